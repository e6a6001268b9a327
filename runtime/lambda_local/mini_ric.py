"""A minimal Lambda runtime interface client, for machines where awslambdaric is missing.

``python -m runtime.lambda_local.mini_ric module.function`` loads the handler, then loops on the
Runtime API at ``AWS_LAMBDA_RUNTIME_API``: fetch the next event, call the handler, post its
JSON result or an error with the traceback. The emulator prefers AWS's own awslambdaric.
"""

from __future__ import annotations

import http.client
import importlib
import json
import os
import sys
import traceback
from typing import Any

API = "/2018-06-01/runtime"


class Context:
    """The handler's context: the fields faasdag's handler reads."""

    def __init__(self, headers: Any):
        self.aws_request_id = headers.get("Lambda-Runtime-Aws-Request-Id")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn")
        self.deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")


def _request(address: str, method: str, path: str, body: bytes = b"", headers=None):
    connection = http.client.HTTPConnection(address)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response, data


def _error(exc: BaseException) -> bytes:
    return json.dumps(
        {
            "errorType": type(exc).__name__,
            "errorMessage": str(exc),
            "stackTrace": traceback.format_exception(exc),
        }
    ).encode()


def main(argv: list[str]) -> int:
    address = os.environ["AWS_LAMBDA_RUNTIME_API"]
    module_name, _, function_name = argv[1].rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:
        _request(address, "POST", f"{API}/init/error", _error(exc))
        return 1
    while True:
        response, body = _request(address, "GET", f"{API}/invocation/next")
        if response.status != 200:
            return 1
        request_id = response.getheader("Lambda-Runtime-Aws-Request-Id")
        try:
            result = handler(json.loads(body or b"null"), Context(response.headers))
            outcome, data = "response", json.dumps(result).encode()
        except Exception as exc:
            outcome, data = "error", _error(exc)
        _request(address, "POST", f"{API}/invocation/{request_id}/{outcome}", data)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
