"""`faasdag deploy` and `faasdag destroy`: the Lambda functions ``<prefix>-<MB>`` that real runs
with ``--backend lambda`` invoke.

`deploy` builds the whole zip first (the project's worker packages, the workflow's own
modules, the requirements) and checks its size before it makes any Lambda API call, so a
requirements file that does not resolve or a zip that is too big leaves every function as it
was. Redeploying code that did not change uploads nothing (the zip is reproducible, and its
SHA-256 is compared with the function's ``CodeSha256``). Bad input, missing credentials and
refused API calls exit with status 2 and one line.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from experiments.errors import UsageError

NO_CREDENTIALS = (
    "no AWS credentials: configure them (aws configure / AWS_PROFILE) or use --endpoint-url "
    "for the local emulator"
)


def add_deploy(commands: Any) -> None:
    """The Lambda deployment subcommands: `deploy` and `destroy`."""
    deploy = commands.add_parser(
        "deploy",
        help="create or update the Lambda functions <prefix>-<MB> a workflow runs on",
        description="Package the project's worker code, the workflow's own modules and the "
        "requirements into one zip, then create or update one function <prefix>-<MB> per "
        "memory size with it (unchanged code is not uploaded again). Their environment gets "
        "the Redis URL ($FAASDAG_REDIS_URL or --redis-url) and this user's signing key.",
    )
    deploy.add_argument(
        "workflow",
        metavar="WORKFLOW",
        help="whose task code the functions run: an example (tree_reduction), "
        "path/to/flow.py:builder or pkg.mod:builder",
    )
    _memory_option(deploy, required=True)
    deploy.add_argument("--requirements", metavar="FILE", help="pip requirements file to add")
    deploy.add_argument(
        "--role", metavar="ARN", help="execution role of functions to create (not on the emulator)"
    )
    deploy.add_argument("--redis-url", default=None,
                        help="the store the workers use (default: $FAASDAG_REDIS_URL, which "
                        "keeps a password out of the process list)")  # fmt: skip
    deploy.add_argument("--timeout-s", type=int, default=900, help="function timeout")
    _target_options(deploy)
    deploy.set_defaults(handler=_cmd_deploy)
    destroy = commands.add_parser(
        "destroy",
        help="delete the Lambda functions <prefix>-<MB>",
        description="Delete the functions of --memory, or without it every function named "
        "<prefix>-<digits> (found with ListFunctions, which faasdag's deployer policy does not "
        "grant: name them with --memory there).",
    )
    _memory_option(destroy, required=False)
    _target_options(destroy)
    destroy.set_defaults(handler=_cmd_destroy)


def _memory_option(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--memory", action="append", required=required, metavar="MB[,MB...]",
        help="memory sizes, one function <prefix>-<MB> each, e.g. 1024,2048 (repeatable)",
    )  # fmt: skip


def _target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", default="faasdag", help="function names <prefix>-<MB>")
    parser.add_argument("--region", default=None, help="default: AWS config's, else us-east-1")
    parser.add_argument("--endpoint-url", default=None, help="another Lambda API (the emulator)")


def _memory_sizes(values: list[str]) -> list[int]:
    """Memory sizes in MB from ``--memory 1024,2048 --memory 512``: distinct, ascending.

    Raises
    ------
    UsageError
        Quoting a value that is not a whole number of MB in Lambda's range.
    """
    from dag.resources import ResourceConfig

    sizes = set()
    for item in (part.strip() for value in values for part in value.split(",")):
        try:
            sizes.add(ResourceConfig(int(item)).memory_mb)
        except ValueError as err:
            detail = "" if not item.lstrip("-").isdigit() else f": {err}"
            raise UsageError(f"--memory {item!r} is not a memory size in MB{detail}") from None
    if not sizes:
        raise UsageError("--memory: give at least one memory size in MB, e.g. 1024,2048")
    return sorted(sizes)


def _is_local(endpoint_url: str | None) -> bool:
    from runtime.lambda_backend import _is_loopback

    return bool(endpoint_url) and _is_loopback(endpoint_url)


def _region(args: argparse.Namespace) -> str:
    """--region, else the AWS configuration's region, else us-east-1."""
    if args.region:
        return args.region
    if _is_local(args.endpoint_url):
        return "us-east-1"
    import boto3

    return boto3.session.Session().region_name or "us-east-1"


def _check_credentials(endpoint_url: str | None) -> None:
    """Refuse to go on without AWS credentials, before anything is built or called (the local
    emulator takes dummy ones).

    Raises
    ------
    UsageError
        `NO_CREDENTIALS`, if boto3 finds none.
    """
    if _is_local(endpoint_url):
        return
    import boto3

    if boto3.session.Session().get_credentials() is None:
        raise UsageError(NO_CREDENTIALS)


def _build_zip(args: argparse.Namespace, folder: Path) -> bytes:
    """The deployment zip's bytes: the worker packages, the workflow's modules and the
    requirements (for Lambda's platform; for this interpreter on a loopback emulator, whose
    workers run it and have faasdag's own requirements already)."""
    from experiments.workflows import load_workflow
    from runtime import lambda_package

    loaded = load_workflow(args.workflow)
    try:
        modules = lambda_package.workflow_modules(loaded)
    except ValueError as err:
        raise UsageError(f"deploy: {err}") from None
    local = _is_local(args.endpoint_url)
    files = [args.requirements] if args.requirements else []
    try:
        zip_path = lambda_package.package(
            folder / "faasdag.zip",
            requirements_files=files,
            extra_paths=modules,
            base_requirements=() if local else lambda_package.BASE_REQUIREMENTS,
            platform=None if local else lambda_package.LAMBDA_PLATFORM,
        )
    except (FileNotFoundError, RuntimeError, ValueError) as err:
        raise UsageError(f"deploy: {err}") from None
    for module in modules:
        print(f"workflow code: {module}")
    return zip_path.read_bytes()


def _cmd_deploy(args: argparse.Namespace) -> int:
    """Build the zip, check it, then create or update one function per memory size."""
    from botocore.exceptions import BotoCoreError, NoCredentialsError

    from dag.resources import ResourceConfig
    from runtime import lambda_deploy, lambda_package
    from runtime.redis_driver import REDIS_URL_ENV

    memory_mb = _memory_sizes(args.memory)
    redis_url = args.redis_url or os.environ.get(REDIS_URL_ENV)
    if not redis_url:
        raise UsageError(
            f"deploy: no Redis URL for the workers: set {REDIS_URL_ENV} or pass --redis-url"
        )
    if args.requirements and not Path(args.requirements).is_file():
        raise UsageError(f"deploy: requirements file {args.requirements!r} does not exist")
    _check_credentials(args.endpoint_url)
    region = _region(args)
    with tempfile.TemporaryDirectory(prefix="faasdag-deploy-") as folder:
        code = _build_zip(args, Path(folder))
    try:
        # Read at call time, so that a test can lower the limit.
        lambda_package.check_zip_size(len(code), lambda_package.MAX_ZIP_BYTES)
    except ValueError as err:
        raise UsageError(f"deploy: {err}") from None
    print(f"zip: {len(code):,} bytes, sha256 {lambda_package.code_sha256(code)}")
    role = args.role or (lambda_deploy.LOCAL_ROLE_ARN if _is_local(args.endpoint_url) else None)
    try:
        done = lambda_deploy.deploy_code(
            code,
            [ResourceConfig(mb) for mb in memory_mb],
            role_arn=role,
            endpoint_url=args.endpoint_url,
            region_name=region,
            prefix=args.prefix,
            timeout_s=args.timeout_s,
            redis_url=redis_url,
        )
    except NoCredentialsError:
        raise UsageError(NO_CREDENTIALS) from None
    except (lambda_deploy.DeployError, BotoCoreError) as err:
        raise UsageError(f"deploy: {err}") from None
    except ValueError as err:  # a function to create and no --role
        raise UsageError(f"deploy: {err}; give --role ARN") from None
    for deployment in done:
        print(_deployed_line(deployment))
    return 0


def _deployed_line(deployment: Any) -> str:
    what = {
        "created": f"created ({deployment.memory_mb} MB)",
        "updated": "code updated",
        "unchanged": "code unchanged",
    }[deployment.action]
    environment = ", environment updated" if deployment.configuration_updated else ""
    return f"{deployment.function_name}: {what} (sha256 {deployment.code_sha256}){environment}"


def _cmd_destroy(args: argparse.Namespace) -> int:
    """Delete the functions of --memory, or every ``<prefix>-<digits>`` one."""
    from botocore.exceptions import BotoCoreError, NoCredentialsError

    from runtime.lambda_deploy import DeployError, destroy

    memory_mb = _memory_sizes(args.memory) if args.memory else None
    _check_credentials(args.endpoint_url)
    try:
        deleted = destroy(
            memory_mb,
            prefix=args.prefix,
            endpoint_url=args.endpoint_url,
            region_name=_region(args),
        )
    except NoCredentialsError:
        raise UsageError(NO_CREDENTIALS) from None
    except DeployError as err:
        hint = ""
        if memory_mb is None and err.error_code == "AccessDeniedException":
            hint = "; name the functions with --memory instead"
        raise UsageError(f"destroy: {err}{hint}") from None
    except BotoCoreError as err:
        raise UsageError(f"destroy: {err}") from None
    if not deleted:
        print(f"no functions {args.prefix}-<MB> found: nothing to delete")
    for name, was_there in deleted.items():
        print(f"{name}: deleted" if was_there else f"{name}: not found (nothing to delete)")
    return 0
