"""The dashboard's Bokeh server: bound on 127.0.0.1 by default, in a thread of its own.

`Dashboard` binds its port when it is made (so a port in use is an error at once, not in a
thread), serves one page per browser tab from its own IO loop, and shows either the run its
feed follows (`follow`, live) or the runs of a trace folder (``replay=``).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import socket
import threading
import time
from typing import Any

from bokeh.application import Application
from bokeh.application.handlers.function import FunctionHandler
from bokeh.server.server import Server

from dashboard import DEFAULT_HOST, DEFAULT_PORT
from dashboard.app import LivePage, ReplayPage
from dashboard.feed import Feed
from dashboard.replay import Replay

log = logging.getLogger(__name__)


class DashboardError(OSError):
    """The dashboard cannot serve (its port is in use, its address cannot be bound)."""


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class Dashboard:
    """A dashboard server.

    Parameters
    ----------
    host : str
        Address to bind (default 127.0.0.1: this machine only).
    port : int
        Port (default 8790; 0: any free one).
    replay : Replay, optional
        Serve the runs of a trace folder instead of following a live run.
    run_id : str, optional
        With `replay`, the run a new page shows first.

    Raises
    ------
    DashboardError
        If the port is in use or the address cannot be bound.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        replay: Replay | None = None,
        run_id: str | None = None,
    ):
        self.host = host
        self.port = port or _free_port(host)
        self.feed = Feed()
        self.replay = replay
        self.run_id = run_id
        self._server: Any = None
        if replay is not None:  # the first page then opens at once
            replay.load(run_id or next(iter(replay.labels())))
        ready: queue.Queue = queue.Queue()
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name="dashboard", daemon=True
        )
        self._thread.start()
        error = ready.get()
        if error is not None:
            raise DashboardError(
                f"dashboard cannot serve on {host}:{self.port}: "
                + ("the port is in use (--port picks another)" if _in_use(error) else str(error))
            ) from None

    @property
    def url(self) -> str:
        host = "localhost" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}/"

    def _page(self, doc: Any) -> None:
        if self.replay is not None:
            ReplayPage(doc, self.replay, self.run_id)
        else:
            LivePage(doc, self.feed)

    def _serve(self, ready: queue.Queue) -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        origins = [f"{h}:{self.port}" for h in {self.host, "localhost", "127.0.0.1"}]
        try:
            server = Server(
                {"/": Application(FunctionHandler(self._page))},
                address=self.host, port=self.port, allow_websocket_origin=origins,
                check_unused_sessions_milliseconds=2000, unused_session_lifetime_milliseconds=5000,
            )  # fmt: skip
            server.start()
        except Exception as err:  # reported by the constructor, in the caller's thread
            ready.put(err)
            return
        self._server = server
        ready.put(None)
        server.io_loop.start()

    def follow(self, source: Any) -> None:
        """Show the run `source` reads (`runtime.live_source.StreamSource`) from its start."""
        self.feed.follow(source)

    def stop(self) -> None:
        """Stop serving (pages still open stop updating)."""
        server = self._server
        if server is not None:
            server.io_loop.add_callback(server.stop)
            server.io_loop.add_callback(server.io_loop.stop)
            self._thread.join(timeout=5)
            self._server = None

    def wait(self) -> None:
        """Serve until the process is interrupted (Ctrl-C, SIGTERM)."""
        while self._thread.is_alive():
            time.sleep(0.2)


def _in_use(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (48, 98, 10048)


_default: Dashboard | None = None
_default_lock = threading.Lock()


def default_dashboard() -> Dashboard:
    """This process's dashboard for `runtime.run(..., dashboard=True)`: made once, on
    `DEFAULT_PORT` if free, else on any free port."""
    global _default
    with _default_lock:
        if _default is None:
            try:
                _default = Dashboard()
            except DashboardError:
                _default = Dashboard(port=0)
        return _default
