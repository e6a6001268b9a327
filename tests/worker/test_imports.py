"""The worker package is sans-I/O: importing it loads no simpy, redis or boto3."""

import subprocess
import sys


def test_import_worker_loads_no_io_libraries():
    """`import worker` (and its submodules) leaves simpy, redis and boto3 unloaded."""
    code = (
        "import pkgutil, importlib, sys, worker\n"
        "for m in pkgutil.walk_packages(worker.__path__, 'worker.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in ('simpy', 'redis', 'boto3', 'botocore') if n in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
