"""The live dashboard: a Bokeh server app that shows one run as it happens (its live events,
`runtime.live`) or as it happened (its trace tables), task by task.

Names are imported lazily: Bokeh is loaded only when a dashboard is made.
"""

from __future__ import annotations

import importlib
from typing import Any

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8790

_EXPORTS = {
    "Dashboard": "dashboard.server",
    "DashboardError": "dashboard.server",
    "default_dashboard": "dashboard.server",
    "Feed": "dashboard.feed",
    "Replay": "dashboard.replay",
    "NotATraceFolder": "dashboard.replay",
    "load_traces": "dashboard.replay",
    "RunState": "dashboard.state",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dashboard' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
