"""Bounds on the durations and sizes an input may hold: what the simulator's float clock resolves.

The simulated clock is a float64 count of ms from the start of a run. A float keeps about 16
significant digits, so the later the clock, the coarser its step: up to 2**43 ms (278 years)
one step is at most 1/1024 ms, under a microsecond; far beyond that, a short step added to the
clock is lost and the run could no longer move forward.

Every duration that enters from outside (a task's runtime in a workflow or a WfFormat file, a
platform's start-up times and latencies, a recorded exec or transfer time in a trace folder) must
be at most `MAX_DURATION_MS`, one day. A FaaS function runs for minutes (AWS Lambda stops it at
15) and a WfCommons task for seconds to hours, so a longer value is a unit mistake (seconds
given as ms, say); and a run of 100,000 day-long steps one after another still ends before
2**43 ms, at sub-microsecond resolution. Sizes must be at most `MAX_BYTES`, 2**53 bytes (8 PiB):
the largest whole number a float holds exactly, as the network model divides sizes by
bandwidths in floats. NaN and infinity are refused everywhere a duration or size is read.
"""

from __future__ import annotations

#: Longest single duration an input may give, ms (one day).
MAX_DURATION_MS = 86_400_000.0

#: Largest size an input may give, bytes (2**53, exact in a float).
MAX_BYTES = 2**53


def duration_limit_text() -> str:
    """The duration limit as an error message states it."""
    return f"the limit of {MAX_DURATION_MS:.0f} ms (one day; see dag.limits)"


def bytes_limit_text() -> str:
    """The size limit as an error message states it."""
    return f"the limit of {MAX_BYTES} bytes (2**53; see dag.limits)"
