"""The handler an AWS Lambda function of faasdag runs: ``runtime.lambda_handler.handler``.

One function per resource config runs this same code. An event is either a worker invocation
payload (`runtime.redis_driver.RunRef.payload`) or a warm-up ping ``{"faasdag": 1, "warmup":
true}`` sent by the pre-warm optimization. The first event a process sees is its cold start.
"""

from __future__ import annotations

from typing import Any

from runtime.redis_driver import run_invocation

_cold = True


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Run one worker invocation (or answer a warm-up); returns a small JSON-able summary."""
    global _cold
    startup, _cold = ("cold" if _cold else "warm"), False
    if event.get("warmup"):
        return {"warmup": True, "startup": startup}
    outcome = run_invocation(event, startup=startup)
    outcome["startup"] = startup
    return outcome
