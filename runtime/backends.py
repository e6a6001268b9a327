"""Backends: what starts a worker invocation. Each is described by a small JSON-able dict that
travels in payloads, so a worker can invoke further workers the same way it was invoked.

- ``{"kind": "local"}``: a thread of the current process runs the invocation (no containers,
  real Redis). Fast; what tests and the overhead benchmark use.
- ``{"kind": "lambda", ...}``: an asynchronous AWS Lambda invoke (`runtime.lambda_backend`), to
  AWS or to the local emulator when ``endpoint_url`` is set.
"""

from __future__ import annotations

import importlib
import json
import threading
from typing import Any, Protocol

from dag.resources import ResourceConfig


class Backend(Protocol):
    """Starts worker invocations asynchronously."""

    descriptor: dict[str, Any]

    def invoke(self, payload: dict[str, Any], config: ResourceConfig) -> None: ...

    def warmup(self, config: ResourceConfig) -> None: ...

    def prepare(self) -> None:
        """Make what the first invoke would (clients, connections), ahead of it."""
        ...

    def function_timeout_s(self, config: ResourceConfig) -> float:
        """How long the platform lets one invocation of `config` run, in seconds."""
        ...


class LocalBackend:
    """Each invocation runs in a new daemon thread of this process, against the real store.

    Parameters
    ----------
    redis_url : str, optional
        The store its workers use (they are threads of the client: the URL never travels in a
        payload); default: ``FAASDAG_REDIS_URL`` of the environment.
    """

    descriptor: dict[str, Any] = {"kind": "local"}

    def __init__(self, redis_url: str | None = None):
        self.redis_url = redis_url

    def function_timeout_s(self, config: ResourceConfig) -> float:
        """Threads have no platform limit; Lambda's longest (900 s) stands in for one."""
        return 900.0

    def invoke(self, payload: dict[str, Any], config: ResourceConfig) -> None:
        from runtime.redis_driver import run_invocation

        thread = threading.Thread(
            target=run_invocation,
            args=(payload,),
            kwargs={"redis_url": self.redis_url, "backend": self},
            name=payload["worker_id"],
            daemon=True,
        )
        thread.start()

    def warmup(self, config: ResourceConfig) -> None:
        return None  # threads have no cold start

    def prepare(self) -> None:
        return None


_lock = threading.Lock()
_backends: dict[str, Backend] = {}


#: Backend kind -> "module:class" that makes it from the descriptor's other fields. Named, not
#: imported: the Lambda backend imports boto3, and it imports this module for `backend_for`.
BACKEND_KINDS = {
    "local": "runtime.backends:LocalBackend",
    "lambda": "runtime.lambda_backend:LambdaBackend",
}


def make_backend(descriptor: dict[str, Any]) -> Backend:
    """A new backend from its descriptor.

    Raises
    ------
    ValueError
        For an unknown ``kind``.
    """
    kind = descriptor.get("kind")
    if kind not in BACKEND_KINDS:
        raise ValueError(f"unknown backend kind {kind!r}; known: {', '.join(BACKEND_KINDS)}")
    module, _, name = BACKEND_KINDS[kind].partition(":")
    options = {k: v for k, v in descriptor.items() if k != "kind"}
    return getattr(importlib.import_module(module), name)(**options)


def backend_for(descriptor: dict[str, Any]) -> Backend:
    """The backend of `descriptor`, made once per process (boto3 clients are slow to make)."""
    name = json.dumps(descriptor, sort_keys=True)
    with _lock:
        if name not in _backends:
            _backends[name] = make_backend(descriptor)
        return _backends[name]
