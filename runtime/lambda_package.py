"""Packaging faasdag for AWS Lambda: the deployment zip of the project's worker packages, a
workflow's own modules and its requirements, built reproducibly.

The same files give the same zip, byte for byte (fixed timestamps and modes, sorted entries,
no bytecode), so its SHA-256 (Lambda's ``CodeSha256``) says whether deployed code is current.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import site
import stat
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: Packages of this project a worker imports (sim/, planners/, experiments/ stay out).
WORKER_PACKAGES = ("dag", "traces", "worker", "runtime")
#: What the worker code itself needs on Lambda (boto3 is in the Lambda Python runtime).
BASE_REQUIREMENTS = ("redis>=5", "cloudpickle>=3", "numpy>=1.26", "networkx>=3.2")
#: Lambda's limit on a zip sent in the request itself (CreateFunction / UpdateFunctionCode
#: ``ZipFile``); bigger code needs layers or an upload through S3, which faasdag does not do.
MAX_ZIP_BYTES = 50 * 1024 * 1024
#: The timestamp of every zip entry (the earliest a zip can hold): with it, a zip's bytes and
#: so its CodeSha256 depend on the files' contents, not on when they were written.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
#: pip's platform tag of Lambda's x86_64 Python runtimes.
LAMBDA_PLATFORM = "manylinux2014_x86_64"


def package(
    out_path: str | Path,
    *,
    requirements: Sequence[str] = (),
    requirements_files: Sequence[str | Path] = (),
    install: bool = True,
    base_requirements: Sequence[str] = BASE_REQUIREMENTS,
    platform: str | None = LAMBDA_PLATFORM,
    packages: Sequence[str] = WORKER_PACKAGES,
    project_root: str | Path = PROJECT_ROOT,
    extra_paths: Iterable[str | Path] = (),
    python_version: str = "3.11",
) -> Path:
    """Write the deployment zip: the project's worker packages, `extra_paths` (modules of the
    workflow, see `workflow_modules`) and, if `install`, `base_requirements` plus the
    requirements installed with pip.

    The zip is reproducible (`write_zip`): the same files give the same bytes, hence the same
    ``CodeSha256``, which is how `deploy_code` sees that a function's code is unchanged.

    Parameters
    ----------
    out_path : path
        Where the zip goes (written whole, then moved into place).
    requirements : sequence of str
        Requirement specifiers to install beside the code.
    requirements_files : sequence of path
        pip requirements files (``pip install -r``) to install likewise.
    install : bool
        False: no pip at all (the packages and `extra_paths` only).
    base_requirements : sequence of str
        What the worker code needs (default `BASE_REQUIREMENTS`); ``()`` where the functions'
        interpreter has them already (the local emulator runs workers with its own).
    platform : str or None
        pip's ``--platform`` (default Lambda's, binary wheels for `python_version` only);
        None installs for this interpreter (functions running on this machine).
    packages : sequence of str
        Top-level packages of `project_root` to ship (default `WORKER_PACKAGES`); only their
        ``.py`` files go in.
    extra_paths : iterable of path
        Module files and package folders, each placed at the zip's root (a folder's ``.py``
        files, keeping the folder's name).

    Returns
    -------
    Path of the zip.

    Raises
    ------
    FileNotFoundError
        If a package, extra path or requirements file does not exist (named).
    RuntimeError
        If pip fails (one line: what was asked and pip's errors).
    ValueError
        If two files would have one name in the zip (both named).
    """
    root = Path(project_root)
    entries: dict[str, Path] = {}

    def add(file: Path, base: Path) -> None:
        name = file.relative_to(base).as_posix()
        if "__pycache__" in file.parts or file.suffix in (".pyc", ".pyo"):
            return  # compiled by whichever Python ran here, and rebuilt on Lambda anyway
        if name in entries and entries[name] != file:
            raise ValueError(
                f"{str(file)!r} and {str(entries[name])!r} are both {name!r} in the zip"
            )
        entries[name] = file

    for name in packages:
        folder = root / name
        if not folder.is_dir():
            raise FileNotFoundError(f"package {name!r} not found under {root}")
        for file in folder.rglob("*.py"):
            add(file, root)
    for extra in map(Path, extra_paths):
        if not extra.exists():
            raise FileNotFoundError(f"extra path {str(extra)!r} does not exist")
        for file in extra.rglob("*.py") if extra.is_dir() else [extra]:
            add(file, extra.parent)
    files = [Path(f) for f in requirements_files]
    for file in files:
        if not file.is_file():
            raise FileNotFoundError(f"requirements file {str(file)!r} does not exist")
    wanted = [*base_requirements, *requirements]
    with tempfile.TemporaryDirectory(prefix="faasdag-deps-") as deps:
        if install and (wanted or files):
            _pip_install(
                wanted, Path(deps), python_version, requirements_files=files, platform=platform
            )
            for file in Path(deps).rglob("*"):
                if file.is_file():
                    add(file, Path(deps))
        return write_zip(out_path, entries)


def write_zip(out_path: str | Path, entries: Mapping[str, Path]) -> Path:
    """Write `entries` (name in the zip -> file) as a zip whose bytes depend on the files'
    contents alone: entries in name order, every timestamp `ZIP_DATE_TIME`, mode 0644 (0755
    for an executable file), one compression level. So a rebuild of the same code has the same
    ``CodeSha256`` (`code_sha256`), whenever and wherever it is built.

    Returns
    -------
    Path of the zip (written to a temporary name, then moved into place).
    """
    out = Path(out_path)
    tmp = out.with_suffix(out.suffix + ".tmp")
    try:
        with zipfile.ZipFile(tmp, "w") as archive:
            for name in sorted(entries):
                file = entries[name]
                info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3  # Unix: unzip and Lambda read the mode bits below
                executable = file.stat().st_mode & 0o111
                info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
                archive.writestr(info, file.read_bytes(), compresslevel=6)
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def code_sha256(code: bytes) -> str:
    """Base64 of the SHA-256 of `code`: what Lambda reports as a function's ``CodeSha256``."""
    return base64.b64encode(hashlib.sha256(code).digest()).decode()


def check_zip_size(zip_bytes: int, max_zip_bytes: int | None = None) -> None:
    """Refuse a zip that Lambda would refuse in a CreateFunction / UpdateFunctionCode request.

    Parameters
    ----------
    zip_bytes : int
        Size of the zip.
    max_zip_bytes : int, optional
        The limit (default `MAX_ZIP_BYTES`, Lambda's for a direct upload).

    Raises
    ------
    ValueError
        Saying the size, the limit and how to stay under it.
    """
    limit = MAX_ZIP_BYTES if max_zip_bytes is None else max_zip_bytes
    if zip_bytes > limit:
        raise ValueError(
            f"the deployment zip is {zip_bytes:,} bytes ({zip_bytes / 2**20:.1f} MiB), over "
            f"Lambda's limit of {limit:,} bytes ({limit / 2**20:.1f} MiB) for code uploaded "
            f"directly: deploy fewer requirements (Lambda layers or an upload through S3 take "
            f"more, which faasdag does not do)"
        )


def _pip_install(
    requirements: Sequence[str],
    target: Path,
    python_version: str,
    *,
    requirements_files: Sequence[Path] = (),
    platform: str | None = LAMBDA_PLATFORM,
) -> None:
    """Install `requirements` and `requirements_files` (``-r``) into `target` with pip: for
    `platform` (binary wheels for `python_version` only), or for this interpreter if None.

    Raises
    ------
    RuntimeError
        One line: what was asked and pip's error lines (its whole output is logged at DEBUG).
    """
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-compile", "--target", str(target),
    ]  # fmt: skip
    if platform is not None:
        command += ["--platform", platform, "--only-binary=:all:"]
        command += ["--python-version", python_version]
    for file in requirements_files:
        command += ["-r", str(file)]
    done = subprocess.run([*command, *requirements], capture_output=True, text=True)
    if done.returncode != 0:
        log.debug("pip failed (%d):\n%s", done.returncode, done.stderr)
        asked = ", ".join([*requirements, *(f"-r {f}" for f in requirements_files)])
        raise RuntimeError(f"pip could not install {asked}: {_pip_errors(done)}")


def _pip_errors(done: subprocess.CompletedProcess[str]) -> str:
    """pip's ``ERROR:`` lines as one line (else its last line of output)."""
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    if errors:
        return "; ".join(errors)
    return lines[-1] if lines else f"exit status {done.returncode}"


def workflow_modules(
    workflow: Any,
    *,
    packages: Sequence[str] = WORKER_PACKAGES,
    project_root: str | Path = PROJECT_ROOT,
) -> list[Path]:
    """The module files and package folders a worker needs to run `workflow`'s task functions,
    beyond what `package` ships anyway: pass them as its `extra_paths`.

    A task function is pickled by reference (its module's name and its own), so a worker
    imports its module under the name it has here (``fn.__module__``). Each such module gives
    its top-level module: a file (``flow.py`` for ``flow``) or a package's whole folder
    (``mypkg/`` for ``mypkg.flows``). Modules of `packages` (the project's own, shipped
    already: the example workflows are in ``dag``), of the standard library and of
    site-packages (give those as requirements) are left out.

    Parameters
    ----------
    workflow : Workflow, ExampleWorkflow
        A built `dag.lang.Workflow`, or anything whose ``.workflow`` is one.
    packages : sequence of str
        Top-level packages that `package` ships (default `WORKER_PACKAGES`).
    project_root : path
        Where those packages are (default this project's root).

    Returns
    -------
    list of Path
        Sorted, each once; empty if every task function is the project's own.

    Raises
    ------
    ValueError
        If `workflow` has no task functions (a WfFormat file or a generated DAG has no code),
        or a task function's module could not be imported on a worker: one run as a script
        (``__main__``) or with no file, or loaded under a name that is not its file's.
    """
    from dag.lang import Workflow

    built = workflow if isinstance(workflow, Workflow) else getattr(workflow, "workflow", None)
    if not isinstance(built, Workflow):
        name = getattr(getattr(workflow, "dag", None), "name", None) or type(workflow).__name__
        raise ValueError(
            f"workflow {name!r} has no task code (a WfFormat file or a generated DAG): only "
            f"workflows of @task functions run on Lambda"
        )
    ours = {(Path(project_root) / name).resolve() for name in packages}
    installed = _installed_roots()
    found: set[Path] = set()
    for module_name in sorted({spec.fn.__module__ for spec in built.specs.values()}):
        top = module_name.partition(".")[0]
        path = _top_level_path(module_name)
        if path is None or path in ours or any(path.is_relative_to(r) for r in installed):
            continue
        if path.name.partition(".")[0] != top:
            raise ValueError(
                f"task module {module_name!r} was loaded from {str(path)!r}, a file of another "
                f"name: a worker could not import it as {module_name!r}"
            )
        found.add(path)
    return sorted(found)


def _top_level_path(module_name: str) -> Path | None:
    """The file or package folder of `module_name`'s top-level module; None for a built-in.

    Raises
    ------
    ValueError
        If the module is ``__main__``, not imported, or has no file.
    """
    if module_name == "__main__":
        raise ValueError(
            "task functions defined in a script run as __main__ cannot be imported on a "
            "worker: define them in a module and import it"
        )
    module = sys.modules.get(module_name)
    if module is None:
        raise ValueError(f"task module {module_name!r} is not imported in this process")
    if module_name in sys.builtin_module_names:
        return None
    file = getattr(module, "__file__", None)
    if not file:
        raise ValueError(
            f"task module {module_name!r} has no file (defined interactively?): a worker "
            f"could not import it"
        )
    path = Path(file).resolve()
    if path.name == "__init__.py":
        path = path.parent
    for _ in range(module_name.count(".")):
        path = path.parent
    return path


def _installed_roots() -> list[Path]:
    """Folders of the standard library and of installed packages (not the user's code)."""
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.update(site.getsitepackages())
    roots.add(site.getusersitepackages())
    return [Path(root).resolve() for root in roots]
