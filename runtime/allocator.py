"""Keep freed large blocks in the process's heap instead of handing them back to the kernel.

glibc's malloc serves a block above its mmap threshold (128 KiB at start, raised up to 32 MiB
as such blocks are freed) with a fresh mapping and unmaps it on free, and it trims the heap's
free top above a trim threshold. A worker that moves MB-sized values allocates and frees several
such blocks per transfer (socket reads, the reply, the unpickled arrays), so their pages fault
in again every time. On this machine (a Firecracker VM) that was most of a transfer's CPU: one
1 MB download took 2.8 ms with glibc's defaults and 0.8 with large blocks kept, an 8 MB one 27
and 10 (``benchmarks/store_transfers.py`` compares both).

`keep_large_blocks` sets both thresholds through ``mallopt`` (at run time, so it needs no
environment variable before the process starts). A worker container calls it when it starts;
calibration calls it before timing transfers so that it measures what workers do. The cost is
memory: up to `TRIM_THRESHOLD_BYTES` of freed heap may stay resident per process.
"""

from __future__ import annotations

import ctypes
import sys

#: glibc's ``mallopt`` parameter numbers (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap, bytes (glibc caps the value at 32 MiB on 64-bit).
MMAP_THRESHOLD_BYTES = 32 << 20
#: Free heap above this much is returned to the kernel, bytes.
TRIM_THRESHOLD_BYTES = 128 << 20


def keep_large_blocks() -> bool:
    """Raise glibc's mmap and trim thresholds in this process; True if both were set, False
    where the C library has no ``mallopt`` or refuses (not glibc, not Linux): nothing changes."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return (
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
        and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    )
