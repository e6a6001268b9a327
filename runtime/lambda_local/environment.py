"""One execution environment of the local Lambda emulator: a worker process and its Runtime API.

Each environment is a subprocess running AWS's runtime interface client (``python -m
awslambdaric HANDLER``) with ``AWS_LAMBDA_RUNTIME_API`` pointing at a loopback HTTP listener of
its own, which serves the Lambda Runtime API (version 2018-06-01):

- ``GET  /2018-06-01/runtime/invocation/next``: blocks until an invocation is assigned;
  answers the event with the ``Lambda-Runtime-*`` headers.
- ``POST /2018-06-01/runtime/invocation/{id}/response`` and ``.../error``: the outcome.
- ``POST /2018-06-01/runtime/init/error``: the handler failed to load.

A process that exits while an invocation is in flight fails it with ``Runtime.ExitError``; one
that overruns the function timeout is killed and fails it with a timeout error, as on AWS.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from dag.resources import ResourceConfig

log = logging.getLogger(__name__)

API = "/2018-06-01/runtime"
_ids = itertools.count(1)


@dataclass
class PendingInvocation:
    """One invocation on its way through an environment; `done` is set with the outcome."""

    function_arn: str
    payload: bytes
    timeout_s: float
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    done: threading.Event = field(default_factory=threading.Event)
    body: bytes = b""
    error_type: str | None = None  # set for a function error
    cold: bool = False

    def finish(self, body: bytes, error_type: str | None = None) -> bool:
        """Record the outcome once; returns False if it was already finished."""
        if self.done.is_set():
            return False
        self.body, self.error_type = body, error_type
        self.done.set()
        return True


class QuietHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that logs (not prints) a request broken by a vanished peer."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("request from %s broken", client_address, exc_info=True)


def error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class Environment:
    """A worker process with its own Runtime API listener; runs one invocation at a time.

    Parameters
    ----------
    function : FunctionConfig
        From `runtime.lambda_local.server`.
    command : list of str
        How to start the runtime (``[python, "-m", "awslambdaric", handler]``).
    environ : dict
        The process environment, without ``AWS_LAMBDA_RUNTIME_API`` (added here).
    on_idle, on_exit : callables taking this environment
        Called when an invocation finishes / when the process is gone.
    log_path : Path, optional
        Where the process's stdout and stderr go (default: discarded).
    """

    def __init__(
        self,
        function: Any,
        command: list[str],
        environ: dict[str, str],
        *,
        on_idle: Any,
        on_exit: Any,
        log_path: Path | None = None,
    ):
        self.function = function
        self.id = next(_ids)
        self.on_idle = on_idle
        self.on_exit = on_exit
        self.current: PendingInvocation | None = None
        self.last_used = time.monotonic()
        self.n_invocations = 0
        self._next: queue.Queue[PendingInvocation | None] = queue.Queue(maxsize=1)
        self._lock = threading.Lock()
        self._closed = False
        self._server = QuietHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, name=f"lambda-env-{self.id}", daemon=True
        ).start()
        env = dict(environ)
        env["AWS_LAMBDA_RUNTIME_API"] = f"127.0.0.1:{self._server.server_address[1]}"
        out = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=function.code_dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        if out is not subprocess.DEVNULL:
            out.close()
        threading.Thread(target=self._watch, name=f"lambda-watch-{self.id}", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def busy(self) -> bool:
        return self.current is not None

    def assign(self, invocation: PendingInvocation) -> None:
        """Hand `invocation` to the runtime's next ``/next`` call and arm its timeout."""
        with self._lock:
            if self.current is not None:
                raise RuntimeError(f"environment {self.id} is busy")
            self.current = invocation
            self.n_invocations += 1
        self._next.put(invocation)
        timer = threading.Timer(invocation.timeout_s, self._time_out, args=(invocation,))
        timer.daemon = True
        timer.start()

    def _complete(self, request_id: str, body: bytes, error_type: str | None) -> bool:
        with self._lock:
            invocation = self.current
            if invocation is None or invocation.request_id != request_id:
                return False
            self.current = None
            self.last_used = time.monotonic()
        invocation.finish(body, error_type)
        if not self._closed:
            self.on_idle(self)
        return True

    def _time_out(self, invocation: PendingInvocation) -> None:
        if self.current is invocation:
            message = f"Task timed out after {invocation.timeout_s:.2f} seconds"
            invocation.finish(error_body("Sandbox.Timedout", message), "Unhandled")
            self.kill()

    def _watch(self) -> None:
        code = self.process.wait()
        self._closed = True
        with self._lock:
            invocation, self.current = self.current, None
        if invocation is not None:
            invocation.finish(
                error_body(
                    "Runtime.ExitError",
                    f"RequestId: {invocation.request_id} Error: Runtime exited with "
                    f"error: exit status {code}",
                ),
                "Unhandled",
            )
        self._server.shutdown()
        self._server.server_close()
        self.on_exit(self)

    def kill(self) -> None:
        """Stop the process (its watcher fails any invocation in flight)."""
        self._closed = True
        if self.process.poll() is None:
            self.process.kill()

    # -- Runtime API ----------------------------------------------------------------------

    def next_invocation(self) -> PendingInvocation | None:
        while True:
            try:
                return self._next.get(timeout=1.0)
            except queue.Empty:
                if self._closed:
                    return None


def _handler_for(env: Environment) -> type[BaseHTTPRequestHandler]:
    class RuntimeAPI(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; with Nagle's algorithm on, the
        # peer's delayed ACK adds ~40 ms to every request on loopback.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("runtime api %s: " + format, env.id, *args)

        def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None):
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self) -> None:
            if self.path != f"{API}/invocation/next":
                self._reply(404, b'{"errorMessage":"unknown runtime API path"}')
                return
            invocation = env.next_invocation()
            if invocation is None:  # shutting down
                self._reply(500, b'{"errorMessage":"environment shutting down"}')
                return
            deadline_ms = int((time.time() + invocation.timeout_s) * 1000)
            self._reply(
                200,
                invocation.payload,
                {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
                    "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
                },
            )

        def do_POST(self) -> None:
            body = self._body()
            path = self.path
            if path == f"{API}/init/error":
                invocation = env.current
                if invocation is not None:
                    env._complete(invocation.request_id, body, "Unhandled")
                self._reply(202, b'{"status":"OK"}')
                env.kill()
                return
            prefix = f"{API}/invocation/"
            if path.startswith(prefix) and path.endswith(("/response", "/error")):
                request_id, _, outcome = path[len(prefix) :].rpartition("/")
                error = "Unhandled" if outcome == "error" else None
                if env._complete(request_id, body, error):
                    self._reply(202, b'{"status":"OK"}')
                else:
                    self._reply(400, b'{"errorMessage":"unknown or finished request id"}')
                return
            self._reply(404, b'{"errorMessage":"unknown runtime API path"}')

    return RuntimeAPI


def worker_environ(function: Any, base: dict[str, str], region: str) -> dict[str, str]:
    """The variables Lambda sets in a function's environment (those the runtime reads)."""
    env = dict(base)
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local/{function.name}",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ACCESS_KEY_ID": base.get("AWS_ACCESS_KEY_ID", "local"),
            "AWS_SECRET_ACCESS_KEY": base.get("AWS_SECRET_ACCESS_KEY", "local"),
            "AWS_SESSION_TOKEN": base.get("AWS_SESSION_TOKEN", "local"),
            "LAMBDA_TASK_ROOT": str(function.code_dir),
            "_HANDLER": function.handler,
            "TZ": ":UTC",
            "PYTHONUNBUFFERED": "1",
        }
    )
    # A container limited to its config's CPUs: native thread pools (BLAS, OpenMP) sized to
    # them, not to the whole machine every environment shares (idle pool threads spin).
    threads = str(max(1, int(ResourceConfig(function.memory_mb).cpus)))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = base.get(name, threads)
    paths = [str(function.code_dir), *function.extra_paths]
    if base.get("PYTHONPATH"):
        paths.append(base["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(function.environment)
    return env
