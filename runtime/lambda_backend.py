"""The AWS Lambda backend: asynchronous invokes (``InvocationType=Event``) with boto3.

One Lambda function per resource config, named ``<prefix>-<memory_mb>`` (Lambda sets vCPUs from
memory, so a config with other cpus cannot run there). With ``endpoint_url`` it reaches the
local emulator (`faasdag lambda-local`) instead of AWS.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any

from dag.resources import ResourceConfig, lambda_cpus

WARMUP_PAYLOAD = {"faasdag": 1, "warmup": True}
#: A function's environment variable holding the backend descriptor (JSON) its workers invoke
#: others with: a container makes that backend's client when it starts (see
#: `runtime.lambda_handler`), not in the middle of the first worker that invokes.
BACKEND_ENV = "FAASDAG_BACKEND"


class LambdaInvokeError(RuntimeError):
    """Lambda refused an invocation (names the function and the status)."""


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def function_name(config: ResourceConfig, prefix: str = "faasdag") -> str:
    """The Lambda function of `config`.

    Raises
    ------
    ValueError
        If `config` has cpus other than Lambda's for its memory.
    """
    if abs(config.cpus - lambda_cpus(config.memory_mb)) > 1e-9:
        raise ValueError(
            f"config {config} has cpus={config.cpus}, but Lambda gives "
            f"{lambda_cpus(config.memory_mb):.3f} vCPU at {config.memory_mb} MB"
        )
    return f"{prefix}-{config.memory_mb}"


class LambdaBackend:
    """Invokes workers as Lambda functions, asynchronously.

    Parameters
    ----------
    endpoint_url : str, optional
        The Lambda API to call (the local emulator); default AWS.
    region_name : str
    prefix : str
        Function names are ``<prefix>-<memory_mb>``.
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        region_name: str = "us-east-1",
        prefix: str = "faasdag",
    ):
        self.descriptor: dict[str, Any] = {
            "kind": "lambda",
            "endpoint_url": endpoint_url,
            "region_name": region_name,
            "prefix": prefix,
        }
        self.prefix = prefix
        self._client: Any = None
        self._lock = threading.Lock()
        self._timeouts_s: dict[str, float] = {}

    @property
    def client(self) -> Any:
        """The boto3 Lambda client, made on first use (~100 ms of CPU). A function's container
        makes it at its start when its environment names the backend (`BACKEND_ENV`)."""
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        return lambda_client(self.descriptor["endpoint_url"], self.descriptor["region_name"])

    def invoke(self, payload: dict[str, Any], config: ResourceConfig) -> None:
        """Start one invocation of the function of `config` (does not wait for it)."""
        name = function_name(config, self.prefix)
        response = self.client.invoke(
            FunctionName=name, InvocationType="Event", Payload=json.dumps(payload).encode()
        )
        release_connection(response)
        if response.get("StatusCode") != 202:
            raise LambdaInvokeError(
                f"Lambda function {name!r} answered {response.get('StatusCode')} to an Event invoke"
            )

    def function_timeout_s(self, config: ResourceConfig) -> float:
        """The configured timeout of the function of `config`, in seconds (asked once)."""
        name = function_name(config, self.prefix)
        if name not in self._timeouts_s:
            described = self.client.get_function(FunctionName=name)["Configuration"]
            self._timeouts_s[name] = float(described.get("Timeout", 900))
        return self._timeouts_s[name]

    def warmup(self, config: ResourceConfig) -> None:
        """Send a warm-up ping to the function of `config` (pre-warm); the container it reaches
        also makes this backend's client, to invoke others without delay."""
        self.invoke(warmup_payload(backend=self.descriptor), config)

    def prepare(self) -> None:
        """Make the boto3 client now rather than at the first invoke."""
        _ = self.client


def warmup_payload(**options: Any) -> dict[str, Any]:
    """A signed warm-up ping (`runtime.lambda_handler`): ``backend``, ``hold_ms`` and
    ``imports`` make a container do things, so an unsigned ping is refused like a payload."""
    from runtime.signing import sign_payload

    return sign_payload({**WARMUP_PAYLOAD, **options})


def lambda_client(
    endpoint_url: str | None = None,
    region_name: str | None = "us-east-1",
    *,
    max_attempts: int = 5,
    read_timeout_s: float = 60.0,
) -> Any:
    """A boto3 Lambda client: AWS's API, or the one at `endpoint_url` (on loopback without
    credentials, the emulator's dummy ones); `max_attempts` includes the first try."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    credentials: dict[str, str] = {}
    if endpoint_url and _is_loopback(endpoint_url) and session.get_credentials() is None:
        credentials = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
    return session.client(
        "lambda",
        endpoint_url=endpoint_url,
        region_name=region_name,
        config=Config(
            retries={"max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=64,
            connect_timeout=5,
            read_timeout=read_timeout_s,
        ),
        **credentials,
    )


def release_connection(response: dict[str, Any]) -> bytes:
    """Read an Invoke response's whole body, so that its connection goes back to the pool.

    botocore hands a connection back to its pool only once the body has been read. Unread, every
    invoke opened a connection of its own: a TCP (on AWS also a TLS) handshake, and on the local
    emulator a new server thread, each time (~0.4 ms of CPU more per invoke here).

    Parameters
    ----------
    response : dict
        What boto3's ``invoke`` returned.

    Returns
    -------
    bytes
        The body: empty for Event and DryRun, the function's result for RequestResponse.
    """
    return response["Payload"].read()


def backend_environment(
    endpoint_url: str | None = None,
    region_name: str = "us-east-1",
    prefix: str = "faasdag",
    *,
    redis_url: str | None = None,
) -> dict[str, str]:
    """Environment variables for a function whose workers invoke others through this backend
    (`BACKEND_ENV`): its containers make the backend's client when they start. With
    `redis_url`, also the store its workers use (``FAASDAG_REDIS_URL``: never in a payload)."""
    backend = LambdaBackend(endpoint_url, region_name, prefix)
    variables = {BACKEND_ENV: json.dumps(backend.descriptor, sort_keys=True)}
    if redis_url is not None:
        from runtime.redis_driver import REDIS_URL_ENV

        variables[REDIS_URL_ENV] = redis_url
    return variables


def prepare_configured_backend(environ: Mapping[str, str] | None = None) -> None:
    """Make the client of the backend named by `BACKEND_ENV` in `environ` (default: this
    process's), if any: a container calls it when it starts.

    Raises
    ------
    ValueError
        If the variable is not a JSON object (a backend descriptor).
    """
    from runtime.backends import backend_for

    text = (os.environ if environ is None else environ).get(BACKEND_ENV)
    if not text:
        return
    try:
        descriptor = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{BACKEND_ENV}={text!r} is not JSON: {err}") from None
    if not isinstance(descriptor, dict):
        raise ValueError(f"{BACKEND_ENV}={text!r} must be a JSON object (a backend descriptor)")
    backend_for(descriptor).prepare()
