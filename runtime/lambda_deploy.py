"""Deploying faasdag to AWS Lambda: package the project, create or update one function per
memory size, and state the IAM policy the functions and the deployer need.

Function code is the same zip for every function (``<prefix>-<memory_mb>``); a workflow's
Python requirements are installed into the zip at package time, so workers never install at
run time.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dag.resources import ResourceConfig
from runtime.lambda_backend import backend_environment, function_name
from runtime.redis_driver import REDIS_URL_ENV
from runtime.signing import SIGNING_KEY_ENV, signing_key

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: Packages of this project a worker imports (sim/, planners/, experiments/ stay out).
WORKER_PACKAGES = ("dag", "traces", "worker", "runtime")
#: What the worker code itself needs on Lambda (boto3 is in the Lambda Python runtime).
BASE_REQUIREMENTS = ("redis>=5", "cloudpickle>=3", "numpy>=1.26", "networkx>=3.2")
HANDLER = "runtime.lambda_handler.handler"


def package(
    out_path: str | Path,
    *,
    requirements: Sequence[str] = (),
    install: bool = True,
    packages: Sequence[str] = WORKER_PACKAGES,
    project_root: str | Path = PROJECT_ROOT,
    extra_paths: Iterable[str | Path] = (),
    python_version: str = "3.11",
) -> Path:
    """Write the deployment zip: the project's worker packages, `extra_paths` (modules of the
    workflow), and, if `install`, `BASE_REQUIREMENTS` plus `requirements` installed for Lambda
    (manylinux x86_64 wheels) with pip.

    Returns
    -------
    Path of the zip.

    Raises
    ------
    FileNotFoundError
        If a package or extra path does not exist (named).
    RuntimeError
        If pip fails (its output is in the message).
    """
    root = Path(project_root)
    out = Path(out_path)
    sources: list[tuple[Path, Path]] = []  # (file, its base folder)
    for name in packages:
        folder = root / name
        if not folder.is_dir():
            raise FileNotFoundError(f"package {name!r} not found under {root}")
        sources += [(f, root) for f in folder.rglob("*.py")]
    for extra in map(Path, extra_paths):
        if not extra.exists():
            raise FileNotFoundError(f"extra path {str(extra)!r} does not exist")
        base = extra.parent
        files = extra.rglob("*.py") if extra.is_dir() else [extra]
        sources += [(f, base) for f in files]
    with tempfile.TemporaryDirectory(prefix="faasdag-deps-") as deps:
        if install:
            _pip_install([*BASE_REQUIREMENTS, *requirements], Path(deps), python_version)
            sources += [(f, Path(deps)) for f in Path(deps).rglob("*") if f.is_file()]
        tmp = out.with_suffix(out.suffix + ".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for file, base in sorted(sources):
                if "__pycache__" in file.parts:
                    continue
                archive.write(file, file.relative_to(base).as_posix())
        tmp.replace(out)
    return out


def _pip_install(requirements: Sequence[str], target: Path, python_version: str) -> None:
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
        "--platform", "manylinux2014_x86_64", "--only-binary=:all:",
        "--python-version", python_version, *requirements,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip could not install {list(requirements)}:\n{done.stderr}")


def deploy(
    zip_path: str | Path,
    configs: Iterable[ResourceConfig],
    *,
    role_arn: str,
    endpoint_url: str | None = None,
    region_name: str = "us-east-1",
    prefix: str = "faasdag",
    timeout_s: int = 900,
    runtime: str = "python3.11",
    environment: dict[str, str] | None = None,
    redis_url: str | None = None,
) -> list[str]:
    """Create or update one function per distinct memory size of `configs`; returns the names.

    The code is uploaded once per function (not per task), and Lambda's asynchronous retries are
    switched off (``MaximumRetryAttempts=0``): the client retries lost workers itself. Every
    function's environment holds what its workers must not get from a payload: the store's
    URL (``FAASDAG_REDIS_URL``: `redis_url`, default this process's variable) and the key that
    signs payloads and stored values (``FAASDAG_SIGNING_KEY``: this process's key,
    `runtime.signing`), plus the backend its workers invoke others with
    (`backend_environment`), so its containers make their Lambda client when they start.
    `environment` adds variables (or overrides those). An existing function gets its code and
    these variables updated (its other variables are kept).

    Raises
    ------
    ValueError
        If no Redis URL is given or set in the environment.
    """
    import boto3

    from runtime.lambda_backend import _is_loopback

    credentials: dict[str, str] = {}
    if endpoint_url and _is_loopback(endpoint_url) and boto3.Session().get_credentials() is None:
        credentials = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
    client = boto3.client(
        "lambda", endpoint_url=endpoint_url, region_name=region_name, **credentials
    )
    code = Path(zip_path).read_bytes()
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
    names = sorted({function_name(c, prefix) for c in configs})
    memory = {function_name(c, prefix): c.memory_mb for c in configs}
    for name in names:
        try:
            existing = client.get_function(FunctionName=name)["Configuration"]
        except client.exceptions.ResourceNotFoundException:
            existing = None
        if existing is not None:
            log.info("updating the code of %s", name)
            client.update_function_code(FunctionName=name, ZipFile=code)
            current = existing.get("Environment", {}).get("Variables", {})
            if any(current.get(key) != value for key, value in variables.items()):
                _wait_updated(client, name)
                client.update_function_configuration(
                    FunctionName=name, Environment={"Variables": {**current, **variables}}
                )
        else:
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
        # The client re-invokes lost workers itself, as numbered attempts that read back what
        # was stored; Lambda's own asynchronous retries would re-run a worker as attempt 0.
        client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    return names


def _wait_updated(client: Any, name: str, timeout_s: float = 60.0) -> None:
    """Wait until function `name`'s last update is done (AWS refuses a configuration update
    while its code update is in progress)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get_function(FunctionName=name)["Configuration"].get("LastUpdateStatus")
        if status in (None, "Successful", "Failed"):
            return
        time.sleep(0.5)


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
