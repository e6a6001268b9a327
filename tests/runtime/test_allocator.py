"""The worker's allocator setting: freed large blocks stay in the heap (`runtime.allocator`)."""

import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").is_file() or platform.libc_ver()[0] != "glibc",
    reason="glibc's allocator, resident memory read from Linux's /proc",
)

#: Resident KiB before, while holding and after freeing a 24 MiB block whose every page is
#: written, in a fresh interpreter after `setup`.
PROBE = """
import sys
sys.path.insert(0, {root!r})
{setup}

def rss_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

before = rss_kib()
block = bytearray(b"x") * (24 << 20)
holding = rss_kib()
del block
print(before, holding, rss_kib())
"""


def resident_kib(setup: str) -> tuple[int, int, int]:
    code = PROBE.format(root=str(ROOT), setup=setup)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    before, holding, after = map(int, out.stdout.split())
    assert holding - before > 20_000, "the block was not resident while held"
    return before, holding, after


def test_glibc_default_hands_a_freed_large_block_back():
    """The baseline the setting changes: by default a freed 24 MiB block leaves the process."""
    _before, holding, after = resident_kib("")
    assert holding - after > 20_000


def test_kept_large_blocks_stay_resident_for_the_next_transfer():
    """After `keep_large_blocks` (glibc) a freed 24 MiB block stays in the heap, so the next
    buffer of that size does not fault its pages in again."""
    _before, holding, after = resident_kib(
        "from runtime.allocator import keep_large_blocks\nassert keep_large_blocks()"
    )
    assert holding - after < 4_000


def test_a_worker_container_keeps_large_blocks_from_its_start():
    """Importing the Lambda handler (a container's cold start) sets the allocator."""
    _before, holding, after = resident_kib("import runtime.lambda_handler")
    assert holding - after < 4_000
