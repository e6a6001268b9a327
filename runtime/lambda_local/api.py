"""The HTTP side of the local Lambda emulator: the Invoke API's routes over a `LambdaEmulator`.

Each route parses one request, calls the emulator and answers as the Lambda API does (status,
JSON body, ``x-amzn-ErrorType`` on an error); the emulator's state and processes live in
`runtime.lambda_local.server`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any

from runtime.lambda_local.server import (
    DEFAULT_HANDLER,
    PROJECT_ROOT,
    LambdaAPIError,
    LambdaEmulator,
)

log = logging.getLogger(__name__)

EVENT_CONFIG_PREFIX = "/2019-09-25/functions"


def invoke_api(emulator: LambdaEmulator) -> type[BaseHTTPRequestHandler]:
    prefix = "/2015-03-31/functions"

    class InvokeAPI(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; with Nagle's algorithm on, the
        # peer's delayed ACK adds ~40 ms to every request on loopback.
        disable_nagle_algorithm = True

        def setup(self) -> None:
            super().setup()
            with emulator._lock:
                emulator.stats.connections += 1

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("lambda api: " + format, *args)

        def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None):
            self.send_response(status)
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if body and not any(k.lower() == "content-type" for k in headers or {}):
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _route(self, method: str) -> None:
            body = self._body()
            path = urllib.parse.urlsplit(self.path).path
            try:
                if method == "PUT" and path.startswith(EVENT_CONFIG_PREFIX):
                    # PutFunctionEventInvokeConfig: recorded; the emulator never retries anyway.
                    name = path[len(EVENT_CONFIG_PREFIX) :].strip("/").split("/")[0]
                    emulator.function(name)
                    config = {"FunctionArn": name, **json.loads(body or b"{}")}
                    emulator.event_invoke_configs[name] = config
                    self._reply(200, json.dumps(config).encode())
                    return
                if not path.startswith(prefix):
                    raise LambdaAPIError(404, "UnknownOperationException", f"no route {path}")
                rest = path[len(prefix) :].strip("/")
                parts = rest.split("/") if rest else []
                if method == "POST" and len(parts) == 2 and parts[1] == "invocations":
                    kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
                    status, result, error = emulator.invoke(parts[0], body, kind)
                    headers = {"X-Amz-Executed-Version": "$LATEST"}
                    if error is not None:
                        headers["X-Amz-Function-Error"] = error
                    self._reply(status, result, headers)
                elif method == "POST" and not parts:
                    self._reply(201, self._create(json.loads(body or b"{}")))
                elif method == "GET" and not parts:  # ListFunctions: all in one page
                    with emulator._lock:
                        functions = sorted(emulator.functions.values(), key=lambda f: f.name)
                    described = [f.description(emulator.region) for f in functions]
                    self._reply(200, json.dumps({"Functions": described}).encode())
                elif method == "GET" and len(parts) == 1:
                    function = emulator.function(parts[0])
                    self._reply(
                        200,
                        json.dumps(
                            {"Configuration": function.description(emulator.region)}
                        ).encode(),
                    )
                elif method == "DELETE" and len(parts) == 1:
                    emulator.remove_function(parts[0])
                    self._reply(204, b"")
                elif method == "PUT" and len(parts) == 2 and parts[1] == "code":
                    self._reply(200, self._update_code(parts[0], json.loads(body or b"{}")))
                elif method == "PUT" and len(parts) == 2 and parts[1] == "configuration":
                    self._reply(
                        200, self._update_configuration(parts[0], json.loads(body or b"{}"))
                    )
                else:
                    raise LambdaAPIError(404, "UnknownOperationException", f"no route {path}")
            except LambdaAPIError as err:
                self._reply(
                    err.status,
                    json.dumps({"Type": "User", "message": err.message}).encode(),
                    {"x-amzn-ErrorType": err.error_type},
                )
            except (ValueError, KeyError) as err:
                self._reply(
                    400,
                    json.dumps({"Type": "User", "message": str(err)}).encode(),
                    {"x-amzn-ErrorType": "InvalidParameterValueException"},
                )

        def _create(self, spec: dict[str, Any]) -> bytes:
            name = spec["FunctionName"]
            if name in emulator.functions:
                raise LambdaAPIError(
                    409, "ResourceConflictException", f"Function already exist: {name}"
                )
            code = base64.b64decode(spec.get("Code", {}).get("ZipFile", ""))
            function = emulator.add_function(
                name,
                int(spec.get("MemorySize", 128)),
                code_dir=emulator._unpack(name, code) if code else PROJECT_ROOT,
                handler=spec.get("Handler", DEFAULT_HANDLER),
                timeout_s=float(spec.get("Timeout", 3)),
                environment=dict(spec.get("Environment", {}).get("Variables", {})),
                role=spec.get("Role", ""),
                runtime=spec.get("Runtime", "python3.11"),
                code_sha256=code_sha256(code),
            )
            return json.dumps(function.description(emulator.region)).encode()

        def _update_code(self, raw_name: str, spec: dict[str, Any]) -> bytes:
            old = emulator.function(raw_name)
            code = base64.b64decode(spec.get("ZipFile", ""))
            with emulator._lock:
                emulator.stats.code_updates += 1
            function = emulator.add_function(
                old.name,
                old.memory_mb,
                code_dir=emulator._unpack(old.name, code),
                handler=old.handler,
                timeout_s=old.timeout_s,
                environment=old.environment,
                role=old.role,
                runtime=old.runtime,
                code_sha256=code_sha256(code),
            )
            return json.dumps(function.description(emulator.region)).encode()

        def _update_configuration(self, raw_name: str, spec: dict[str, Any]) -> bytes:
            """UpdateFunctionConfiguration: memory, timeout, handler and environment; new
            containers start with them (idle ones are stopped, as a code update does)."""
            old = emulator.function(raw_name)
            environment = spec.get("Environment", {}).get("Variables", old.environment)
            function = emulator.add_function(
                old.name,
                int(spec.get("MemorySize", old.memory_mb)),
                code_dir=old.code_dir,
                handler=spec.get("Handler", old.handler),
                timeout_s=float(spec.get("Timeout", old.timeout_s)),
                environment=dict(environment),
                extra_paths=old.extra_paths,
                role=spec.get("Role", old.role),
                runtime=spec.get("Runtime", old.runtime),
                code_sha256=old.code_sha256,
            )
            return json.dumps(function.description(emulator.region)).encode()

        def do_POST(self) -> None:
            self._route("POST")

        def do_GET(self) -> None:
            self._route("GET")

        def do_PUT(self) -> None:
            self._route("PUT")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    return InvokeAPI


def code_sha256(data: bytes) -> str:
    """Lambda's ``CodeSha256`` of a zip: base64 of its SHA-256."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()
