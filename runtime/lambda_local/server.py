"""The local Lambda emulator: the Invoke API that boto3 speaks, over pools of real processes.

Endpoints (Lambda API version 2015-03-31, JSON over HTTP on loopback; served by
`runtime.lambda_local.api`):

- ``POST /2015-03-31/functions/{name}/invocations`` (Invoke): header ``X-Amz-Invocation-Type``
  ``RequestResponse`` (200 with the function's result; a function error is still 200, with
  ``X-Amz-Function-Error: Unhandled``), ``Event`` (202, queued and run when a slot is free) or
  ``DryRun`` (204).
- ``POST /2015-03-31/functions`` (CreateFunction), ``GET /2015-03-31/functions/``
  (ListFunctions, in one page), ``GET /2015-03-31/functions/{name}`` (GetFunction),
  ``DELETE /2015-03-31/functions/{name}`` (DeleteFunction),
  ``PUT /2015-03-31/functions/{name}/code`` (UpdateFunctionCode),
  ``PUT /2015-03-31/functions/{name}/configuration`` (UpdateFunctionConfiguration),
  ``PUT /2019-09-25/functions/{name}/event-invoke-config`` (recorded only): enough for the
  deployer; a zip is unpacked and run as the function's code.

Each function (one per memory size) has a pool of execution environments
(`runtime.lambda_local.environment`): an invocation reuses an idle one (warm) or starts a new
process (cold: process start and imports, for real). Idle environments are stopped after
`keep_alive_s`; at most `max_concurrency` invocations run at once (synchronous ones beyond it
get 429 TooManyRequestsException, asynchronous ones wait in a FIFO queue).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.lambda_local.environment import (
    Environment,
    PendingInvocation,
    QuietHTTPServer,
    error_body,
    worker_environ,
)

log = logging.getLogger(__name__)

ACCOUNT = "000000000000"
SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
ASYNC_PAYLOAD_LIMIT = 256 * 1024
DEFAULT_HANDLER = "runtime.lambda_handler.handler"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class LambdaAPIError(Exception):
    """An API error: HTTP status, AWS error type and message."""

    def __init__(self, status: int, error_type: str, message: str):
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message


@dataclass
class FunctionConfig:
    """One function: its code, handler, memory size and timeout, and its environment pool."""

    name: str
    memory_mb: int
    code_dir: Path = PROJECT_ROOT
    handler: str = DEFAULT_HANDLER
    timeout_s: float = 900.0
    environment: dict[str, str] = field(default_factory=dict)
    extra_paths: tuple[str, ...] = ()
    role: str = ""
    runtime: str = "python3.11"
    idle: list[Environment] = field(default_factory=list, repr=False)
    live: set[Environment] = field(default_factory=set, repr=False)
    code_sha256: str = ""

    def description(self, region: str) -> dict[str, Any]:
        return {
            "FunctionName": self.name,
            "FunctionArn": function_arn(self.name, region),
            "Runtime": self.runtime,
            "Role": self.role,
            "Handler": self.handler,
            "MemorySize": self.memory_mb,
            "Timeout": int(self.timeout_s),
            "Version": "$LATEST",
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "CodeSha256": self.code_sha256,
            "Environment": {"Variables": dict(self.environment)},
        }


def _log_folder(log_dir: str | os.PathLike) -> Path:
    """`log_dir` as a folder, made if only its last part is missing: every worker writes its
    log there when it starts, so a missing folder would fail each invocation inside, and the
    caller would learn it only at its timeout.

    Raises
    ------
    ValueError
        Naming the folder, if its parent does not exist or it is not a folder.
    """
    folder = Path(log_dir)
    try:
        folder.mkdir(exist_ok=True)
    except FileNotFoundError:
        raise ValueError(
            f"log_dir {str(folder)!r}: its parent folder {str(folder.parent)!r} does not exist"
        ) from None
    except FileExistsError:
        pass  # a file of that name: reported just below
    if not folder.is_dir():
        raise ValueError(f"log_dir {str(folder)!r} is not a folder")
    return folder


def _warn_if_exposed(bound_host: str, endpoint_url: str) -> None:
    """Log a warning when the API listens on more than loopback: an invocation runs code
    (any zip a CreateFunction sends) as this process's user, with no authentication."""
    import getpass
    import ipaddress

    try:
        loopback = ipaddress.ip_address(bound_host).is_loopback
    except ValueError:  # not an address literal (the server binds one, but be safe)
        loopback = False
    if loopback:
        return
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (some containers)
        user = f"uid {os.getuid()}"
    log.warning(
        "the Lambda API on %s listens beyond loopback (%s): anyone who can reach this port "
        "can run code as user %s on this machine",
        endpoint_url,
        bound_host,
        user,
    )


def function_arn(name: str, region: str) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"


def parse_function_name(raw: str) -> tuple[str, str | None]:
    """Name and qualifier from a name, ``name:qualifier`` or a function ARN."""
    name = urllib.parse.unquote(raw)
    if name.startswith("arn:"):
        parts = name.split(":")
        return parts[6], parts[7] if len(parts) > 7 else None
    name, _, qualifier = name.partition(":")
    return name, qualifier or None


@dataclass
class Stats:
    """Counters of the emulator, for tests and logs."""

    cold_starts: int = 0
    warm_starts: int = 0
    throttled: int = 0
    function_errors: int = 0
    connections: int = 0  # to the Invoke API; a client that keeps its connection opens one
    code_updates: int = 0  # UpdateFunctionCode calls (a redeploy of unchanged code makes none)


class LambdaEmulator:
    """Lambda Invoke and Runtime APIs on loopback, with real worker processes.

    Parameters
    ----------
    host : str
        Address to listen on (default 127.0.0.1). Any other than a loopback address logs a
        warning: whoever reaches the port runs code as this process's user.
    port : int
        0 picks a free port; see `endpoint_url`.
    max_concurrency : int
        Invocations running at once across all functions (default 32).
    keep_alive_s : float
        An idle environment is stopped after this many seconds (default 300).
    region : str
        Region in ARNs and in the workers' environment.
    python : str
        Interpreter of the worker processes (default: this one).
    runtime_client : "awslambdaric" or "builtin"
        The runtime interface client the workers run: AWS's, or the small one shipped here
        (`runtime.lambda_local.mini_ric`) where awslambdaric cannot be installed.
    log_dir : path, optional
        Worker stdout/stderr go to one file per environment there; the folder is made if its
        parent exists.
    environ : dict, optional
        Base environment of worker processes (default: this process's).

    Raises
    ------
    ValueError
        If ``max_concurrency < 1``, or `log_dir` is not a folder and cannot be made (its
        parent is missing, or it is a file).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_concurrency: int = 32,
        keep_alive_s: float = 300.0,
        region: str = "us-east-1",
        python: str = sys.executable,
        runtime_client: str | None = None,
        log_dir: str | os.PathLike | None = None,
        environ: dict[str, str] | None = None,
    ):
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency={max_concurrency!r} must be >= 1")
        self.region = region
        self.keep_alive_s = keep_alive_s
        self.max_concurrency = max_concurrency
        self.python = python
        self.runtime_client = runtime_client or default_runtime_client()
        self.log_dir = _log_folder(log_dir) if log_dir is not None else None
        self.environ = dict(os.environ if environ is None else environ)
        self.functions: dict[str, FunctionConfig] = {}
        # PutFunctionEventInvokeConfig calls, by function (async retries are never made here).
        self.event_invoke_configs: dict[str, dict[str, Any]] = {}
        self.stats = Stats()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._events: queue.Queue[tuple[FunctionConfig, PendingInvocation] | None] = queue.Queue()
        self._code_dirs: list[str] = []
        self._envs: set[Environment] = set()
        self._closed = threading.Event()
        from runtime.lambda_local.api import invoke_api  # it names this module's types

        self._server = QuietHTTPServer((host, port), invoke_api(self))
        self._server.daemon_threads = True
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="lambda-api", daemon=True),
            threading.Thread(target=self._dispatch_events, name="lambda-events", daemon=True),
            threading.Thread(target=self._reap, name="lambda-reaper", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        _warn_if_exposed(self._server.server_address[0], self.endpoint_url)

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- functions ------------------------------------------------------------------------

    def add_function(self, name: str, memory_mb: int, **options: Any) -> FunctionConfig:
        """Register (or replace) function `name`; `options` are `FunctionConfig` fields."""
        function = FunctionConfig(name=name, memory_mb=int(memory_mb), **options)
        with self._lock:
            old = self.functions.get(name)
            self.functions[name] = function
        if old is not None:
            self._retire(old)
        return function

    def remove_function(self, raw_name: str) -> None:
        """Delete function `raw_name` (DeleteFunction); its idle environments stop.

        Raises
        ------
        LambdaAPIError
            404 if there is no such function.
        """
        function = self.function(raw_name)
        with self._lock:
            self.functions.pop(function.name, None)
            self.event_invoke_configs.pop(function.name, None)
        self._retire(function)

    def function(self, raw_name: str) -> FunctionConfig:
        name, qualifier = parse_function_name(raw_name)
        function = self.functions.get(name)
        if function is None or qualifier not in (None, "$LATEST"):
            raise LambdaAPIError(
                404,
                "ResourceNotFoundException",
                f"Function not found: {function_arn(name, self.region)}"
                + (f":{qualifier}" if qualifier else ""),
            )
        return function

    def environments(self) -> list[Environment]:
        """Every live execution environment."""
        with self._lock:
            return list(self._envs)

    def _retire(self, function: FunctionConfig) -> None:
        with self._lock:
            idle, function.idle = list(function.idle), []
        for env in idle:
            env.kill()

    def _unpack(self, name: str, zip_bytes: bytes) -> Path:
        target = Path(tempfile.mkdtemp(prefix=f"faasdag-lambda-{name}-"))
        with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
            archive.extractall(target)
        self._code_dirs.append(str(target))
        return target

    # -- invoking -------------------------------------------------------------------------

    def invoke(self, raw_name: str, payload: bytes, kind: str = "RequestResponse"):
        """Invoke a function like the Invoke API; returns (status, body, function_error)."""
        function = self.function(raw_name)
        if kind == "DryRun":
            return 204, b"", None
        if kind == "Event":
            if len(payload) > ASYNC_PAYLOAD_LIMIT:
                raise LambdaAPIError(
                    413,
                    "RequestTooLargeException",
                    f"Request must be smaller than {ASYNC_PAYLOAD_LIMIT} bytes for the "
                    f"InvokeAsync operation",
                )
            invocation = self._pending(function, payload)
            self._events.put((function, invocation))
            return 202, b"", None
        if kind != "RequestResponse":
            raise LambdaAPIError(
                400, "InvalidParameterValueException", f"unknown invocation type {kind!r}"
            )
        if len(payload) > SYNC_PAYLOAD_LIMIT:
            raise LambdaAPIError(
                413,
                "RequestTooLargeException",
                f"Request must be smaller than {SYNC_PAYLOAD_LIMIT} bytes for the Invoke operation",
            )
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self.stats.throttled += 1
            raise LambdaAPIError(429, "TooManyRequestsException", "Rate Exceeded.")
        invocation = self._pending(function, payload)
        self._run(function, invocation)
        return 200, invocation.body, invocation.error_type

    def _pending(self, function: FunctionConfig, payload: bytes) -> PendingInvocation:
        return PendingInvocation(
            function_arn=function_arn(function.name, self.region),
            payload=payload or b"{}",
            timeout_s=function.timeout_s,
        )

    def _run(self, function: FunctionConfig, invocation: PendingInvocation) -> None:
        """Run `invocation` in a warm or new environment; the caller holds a slot."""
        try:
            env = self._acquire(function, invocation)
            env.assign(invocation)
            invocation.done.wait()
            if invocation.error_type is not None:
                with self._lock:
                    self.stats.function_errors += 1
        except Exception as err:  # could not start a process at all
            log.exception("invocation of %s failed to start", function.name)
            invocation.finish(error_body("Runtime.Unknown", str(err)), "Unhandled")
        finally:
            self._slots.release()

    def _acquire(self, function: FunctionConfig, invocation: PendingInvocation) -> Environment:
        with self._lock:
            while function.idle:
                env = function.idle.pop()  # most recently used first, as Lambda reuses
                if env.process.poll() is None:
                    self.stats.warm_starts += 1
                    return env
            self.stats.cold_starts += 1
        invocation.cold = True
        env = Environment(
            function,
            self._command(function),
            worker_environ(function, self.environ, self.region),
            on_idle=self._idle,
            on_exit=self._exited,
            log_path=(self.log_dir / f"{function.name}-{time.time_ns()}.log")
            if self.log_dir is not None
            else None,
        )
        with self._lock:
            function.live.add(env)
            self._envs.add(env)
        return env

    def _command(self, function: FunctionConfig) -> list[str]:
        module = "awslambdaric" if self.runtime_client == "awslambdaric" else None
        if module is None:
            module = "runtime.lambda_local.mini_ric"
        return [self.python, "-m", module, function.handler]

    def _idle(self, env: Environment) -> None:
        with self._lock:
            function = env.function
            if self.functions.get(function.name) is function and not self._closed.is_set():
                function.idle.append(env)
                return
        env.kill()

    def _exited(self, env: Environment) -> None:
        with self._lock:
            self._envs.discard(env)
            env.function.live.discard(env)
            if env in env.function.idle:
                env.function.idle.remove(env)

    def _dispatch_events(self) -> None:
        while True:
            item = self._events.get()
            if item is None:
                return
            function, invocation = item
            self._slots.acquire()
            threading.Thread(
                target=self._run, args=(function, invocation), name="lambda-event", daemon=True
            ).start()

    def _reap(self) -> None:
        while not self._closed.wait(min(1.0, self.keep_alive_s / 4)):
            cutoff = time.monotonic() - self.keep_alive_s
            with self._lock:
                stale = [
                    env for f in self.functions.values() for env in f.idle if env.last_used < cutoff
                ]
                for env in stale:
                    env.function.idle.remove(env)
            for env in stale:
                env.kill()

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop serving and stop every worker process."""
        self._closed.set()
        self._events.put(None)
        self._server.shutdown()
        self._server.server_close()
        for env in self.environments():
            env.kill()
        for env in self.environments():
            with contextlib.suppress(Exception):  # already reaped
                env.process.wait(5)
        for path in self._code_dirs:
            shutil.rmtree(path, ignore_errors=True)

    def __enter__(self) -> LambdaEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def serve_forever(self) -> None:
        """Block until interrupted (the CLI's loop)."""
        try:
            while not self._closed.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.close()


def default_runtime_client() -> str:
    """``awslambdaric`` when importable, else the built-in runtime client."""
    try:
        import awslambdaric  # noqa: F401
    except ImportError:
        return "builtin"
    return "awslambdaric"
