"""The worker state machine: a worker's decisions as generators that yield effects.

No I/O, no clock, no randomness: drivers in `sim` (SimPy) and `runtime` (real) interpret the
effects. This package never imports simpy, redis or boto3.
"""
