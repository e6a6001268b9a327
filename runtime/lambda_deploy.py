"""Deploying faasdag to AWS Lambda: create, update or delete one function per memory size,
and state the IAM policy the functions and the deployer need.

Function code is the same zip for every function (``<prefix>-<memory_mb>``), built by
`runtime.lambda_package` (re-exported here); a workflow's Python requirements are installed
into the zip at package time, so workers never install at run time. The zip is reproducible,
so deploying unchanged code is seen as such (by its ``CodeSha256``) and uploads nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dag.resources import ResourceConfig
from runtime.lambda_backend import backend_environment, function_name, lambda_client

# The packaging half, re-exported: `package` and friends were first defined here.
from runtime.lambda_package import (
    BASE_REQUIREMENTS,
    LAMBDA_PLATFORM,
    MAX_ZIP_BYTES,
    PROJECT_ROOT,
    WORKER_PACKAGES,
    check_zip_size,
    code_sha256,
    package,
    workflow_modules,
    write_zip,
)
from runtime.redis_driver import REDIS_URL_ENV
from runtime.signing import SIGNING_KEY_ENV, signing_key

__all__ = [
    "BASE_REQUIREMENTS",
    "HANDLER",
    "LAMBDA_PLATFORM",
    "LOCAL_ROLE_ARN",
    "MAX_ZIP_BYTES",
    "PROJECT_ROOT",
    "WORKER_PACKAGES",
    "DeployError",
    "Deployment",
    "check_zip_size",
    "code_sha256",
    "deploy",
    "deploy_code",
    "destroy",
    "function_names",
    "iam_policy",
    "iam_policy_json",
    "package",
    "workflow_modules",
    "write_zip",
]

log = logging.getLogger(__name__)

HANDLER = "runtime.lambda_handler.handler"
#: The execution role given to functions created on the local emulator, which checks none.
LOCAL_ROLE_ARN = "arn:aws:iam::000000000000:role/faasdag-local"


@dataclass(frozen=True, slots=True)
class Deployment:
    """What `deploy_code` did to one function.

    Attributes
    ----------
    function_name : str
    memory_mb : int
    action : {"created", "updated", "unchanged"}
        Of its code: created with it, replaced, or left as it was (the same ``CodeSha256``).
    code_sha256 : str
        Base64 SHA-256 of the code (`code_sha256`).
    configuration_updated : bool
        Whether an existing function's environment (or memory size) was brought up to date.
    """

    function_name: str
    memory_mb: int
    action: str
    code_sha256: str
    configuration_updated: bool = False


class DeployError(RuntimeError):
    """The Lambda API refused a call: names what it was about (a function) and AWS's error
    code (``error_code``, e.g. ``AccessDeniedException``)."""

    def __init__(self, subject: str, error_code: str, message: str):
        super().__init__(f"{subject}: {error_code}: {message}")
        self.subject, self.error_code = subject, error_code


@contextlib.contextmanager
def _api_errors(subject: str) -> Iterator[None]:
    """Turn a botocore ClientError into a `DeployError` about `subject`."""
    from botocore.exceptions import ClientError

    try:
        yield
    except ClientError as err:
        error = err.response.get("Error", {})
        code, message = error.get("Code") or "UnknownError", error.get("Message") or str(err)
        raise DeployError(subject, code, message) from None


def deploy(zip_path: str | Path, configs: Iterable[ResourceConfig], **options: Any) -> list[str]:
    """Create or update one function per distinct memory size of `configs` with the zip at
    `zip_path` (`deploy_code`, whose keyword `options` it takes); returns the function names,
    by memory size."""
    done = deploy_code(Path(zip_path).read_bytes(), configs, **options)
    return [d.function_name for d in done]


def deploy_code(
    code: bytes,
    configs: Iterable[ResourceConfig],
    *,
    role_arn: str | None = None,
    endpoint_url: str | None = None,
    region_name: str = "us-east-1",
    prefix: str = "faasdag",
    timeout_s: int = 900,
    runtime: str = "python3.11",
    environment: dict[str, str] | None = None,
    redis_url: str | None = None,
) -> list[Deployment]:
    """Create, update or leave as it is one function ``<prefix>-<memory_mb>`` per distinct
    memory size of `configs`, with `code` (a zip's bytes).

    Every function is looked up before any is changed, so a missing function without a
    `role_arn` to create it with fails with nothing touched. An existing function whose
    ``CodeSha256`` is `code`'s keeps its code (no UpdateFunctionCode); its environment is
    still brought up to date. Lambda's asynchronous retries are switched off
    (``MaximumRetryAttempts=0``): the client retries lost workers itself. Every function's
    environment holds what its workers must not get from a payload: the store's URL
    (``FAASDAG_REDIS_URL``: `redis_url`, default this process's variable) and the key that
    signs payloads and stored values (``FAASDAG_SIGNING_KEY``: this process's key,
    `runtime.signing`), plus the backend its workers invoke others with
    (`backend_environment`), so its containers make their Lambda client when they start.
    `environment` adds variables (or overrides those); an existing function's other variables
    are kept.

    Returns
    -------
    list of Deployment
        One per function, by memory size.

    Raises
    ------
    ValueError
        If no Redis URL is given or set in the environment, or a function must be created and
        no `role_arn` is given.
    DeployError
        If the Lambda API refuses a call (names the function and AWS's error code).
    """
    redis_url = redis_url or os.environ.get(REDIS_URL_ENV)
    if not redis_url:
        raise ValueError(
            f"deploy needs the Redis URL its workers use: pass redis_url or set {REDIS_URL_ENV}"
        )
    variables = {
        **backend_environment(endpoint_url, region_name, prefix, redis_url=redis_url),
        SIGNING_KEY_ENV: signing_key().decode(),
        **(environment or {}),
    }
    memory = {function_name(c, prefix): c.memory_mb for c in configs}
    names = sorted(memory, key=lambda name: (memory[name], name))
    # An upload of up to 50 MB may take longer than an invoke's read timeout.
    client = lambda_client(endpoint_url, region_name, max_attempts=3, read_timeout_s=300.0)
    existing = {}
    for name in names:
        with _api_errors(name):
            existing[name] = _configuration(client, name)
    missing = [name for name in names if existing[name] is None]
    if missing and not role_arn:
        raise ValueError(
            f"creating {', '.join(missing)} needs the functions' execution role: pass its ARN "
            f"(its policy: runtime.lambda_deploy.iam_policy)"
        )
    sha256 = code_sha256(code)
    done = []
    for name in names:
        with _api_errors(name):
            if existing[name] is None:
                log.info("creating %s (%d MB)", name, memory[name])
                client.create_function(
                    FunctionName=name,
                    Runtime=runtime,
                    Role=role_arn,
                    Handler=HANDLER,
                    Code={"ZipFile": code},
                    MemorySize=memory[name],
                    Timeout=timeout_s,
                    Environment={"Variables": variables},
                )
                done.append(Deployment(name, memory[name], "created", sha256))
            else:
                done.append(
                    _update(client, name, memory[name], existing[name], code, sha256, variables)
                )
            # The client re-invokes lost workers itself, as numbered attempts that read back
            # what was stored; Lambda's own asynchronous retries would re-run a worker as
            # attempt 0.
            client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    return done


def _configuration(client: Any, name: str) -> dict[str, Any] | None:
    """Function `name`'s configuration (GetFunction), or None if there is no such function."""
    try:
        return client.get_function(FunctionName=name)["Configuration"]
    except client.exceptions.ResourceNotFoundException:
        return None


def _update(
    client: Any,
    name: str,
    memory_mb: int,
    current: dict[str, Any],
    code: bytes,
    sha256: str,
    variables: dict[str, str],
) -> Deployment:
    """Bring existing function `name` up to date: its code unless its ``CodeSha256`` is
    `sha256` already, and its environment and memory size where they differ."""
    action = "unchanged"
    if current.get("CodeSha256") != sha256:
        log.info("updating the code of %s", name)
        client.update_function_code(FunctionName=name, ZipFile=code)
        action = "updated"
    else:
        log.info("the code of %s is unchanged (sha256 %s)", name, sha256)
    env = current.get("Environment", {}).get("Variables", {})
    changes: dict[str, Any] = {}
    if any(env.get(key) != value for key, value in variables.items()):
        changes["Environment"] = {"Variables": {**env, **variables}}
    if current.get("MemorySize", memory_mb) != memory_mb:
        changes["MemorySize"] = memory_mb
    if changes:
        _wait_updated(client, name)  # AWS refuses a configuration update during a code update
        client.update_function_configuration(FunctionName=name, **changes)
    return Deployment(name, memory_mb, action, sha256, bool(changes))


def _wait_updated(client: Any, name: str, timeout_s: float = 60.0) -> None:
    """Wait until function `name`'s last update is done (AWS refuses a configuration update
    while its code update is in progress)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get_function(FunctionName=name)["Configuration"].get("LastUpdateStatus")
        if status in (None, "Successful", "Failed"):
            return
        time.sleep(0.5)


def function_names(client: Any, prefix: str = "faasdag") -> list[str]:
    """The functions ``<prefix>-<memory_mb>`` that exist (ListFunctions), by memory size.

    Raises
    ------
    DeployError
        If the Lambda API refuses ListFunctions (faasdag's deployer policy does not grant it:
        it acts on every function of the account).
    """
    pattern = re.compile(rf"{re.escape(prefix)}-(\d+)")
    found = []
    with _api_errors(f"ListFunctions {prefix}-*"):
        for page in client.get_paginator("list_functions").paginate():
            for function in page.get("Functions", []):
                match = pattern.fullmatch(function["FunctionName"])
                if match:
                    found.append((int(match[1]), match[0]))
    return [name for _, name in sorted(found)]


def destroy(
    memory_mb: Iterable[int] | None = None,
    *,
    prefix: str = "faasdag",
    endpoint_url: str | None = None,
    region_name: str = "us-east-1",
) -> dict[str, bool]:
    """Delete the functions ``<prefix>-<MB>`` of `memory_mb` (default: every one that
    `function_names` finds).

    Returns
    -------
    dict
        Function name -> True if it was deleted, False if there was no such function.

    Raises
    ------
    DeployError
        If the Lambda API refuses a call (names the function and AWS's error code).
    """
    client = lambda_client(endpoint_url, region_name, max_attempts=3)
    if memory_mb is None:
        names = function_names(client, prefix)
    else:
        names = [f"{prefix}-{mb}" for mb in sorted(set(memory_mb))]
    deleted = {}
    for name in names:
        with _api_errors(name):
            try:
                client.delete_function(FunctionName=name)
                deleted[name] = True
            except client.exceptions.ResourceNotFoundException:
                deleted[name] = False
    return deleted


def iam_policy(
    prefix: str = "faasdag",
    region: str = "*",
    account: str = "*",
    *,
    role_arn: str | None = None,
) -> dict[str, Any]:
    """The IAM policies faasdag needs, each limited to what is faasdag's own.

    The functions' execution role may invoke the ``<prefix>-*`` functions and write to their
    log groups (``/aws/lambda/<prefix>-*``) only. Whoever deploys, calibrates and runs may
    create, update, invoke and delete those functions, and may pass the execution role only,
    and only to Lambda: a broader ``iam:PassRole`` would let them hand any role of the account
    to a function of their own.

    Parameters
    ----------
    prefix : str
        Name prefix of the functions (`deploy`'s, default ``"faasdag"``); calibration's probe
        functions ``<prefix>-calibrate-*`` fall under it.
    region, account : str
        Region and account id in the ARNs (default ``"*"``: any).
    role_arn : str, optional
        ARN of the functions' execution role, the one role the deployer may pass (default
        ``arn:aws:iam::<account>:role/<prefix>-execution``).

    Returns
    -------
    dict
        ``{"execution_role": policy, "deployer": policy}``, IAM policy documents.
    """
    functions = f"arn:aws:lambda:{region}:{account}:function:{prefix}-*"
    # Lambda writes to /aws/lambda/<function name>; the ":*" form covers its log streams.
    log_groups = f"arn:aws:logs:{region}:{account}:log-group:/aws/lambda/{prefix}-*"
    role_arn = role_arn or f"arn:aws:iam::{account}:role/{prefix}-execution"
    return {
        "execution_role": {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["lambda:InvokeFunction"], "Resource": functions},
                {
                    "Effect": "Allow",
                    "Action": [
                        "logs:CreateLogGroup",
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                    ],
                    "Resource": [log_groups, f"{log_groups}:*"],
                },
            ],
        },
        "deployer": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": [
                        "lambda:CreateFunction",
                        "lambda:UpdateFunctionCode",
                        # `deploy` updates an existing function's environment.
                        "lambda:UpdateFunctionConfiguration",
                        "lambda:GetFunction",
                        "lambda:InvokeFunction",
                        "lambda:PutFunctionEventInvokeConfig",
                        # `faasdag calibrate --backend lambda` removes its probe functions.
                        "lambda:DeleteFunction",
                    ],
                    "Resource": functions,
                },
                {
                    "Effect": "Allow",
                    "Action": ["iam:PassRole"],
                    "Resource": role_arn,
                    "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
                },
            ],
        },
    }


def iam_policy_json(**kwargs: Any) -> str:
    return json.dumps(iam_policy(**kwargs), indent=2)
