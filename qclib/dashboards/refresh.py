"""Periodic refresh inside a dashboard's kernel, driven by its widgets.

A daemon thread redraws every ``interval_s`` seconds (ESO's calChecker refreshes every
few minutes during the night); the page shows when it last did, and a button redraws
at once. ipywidgets send their updates from any thread. A redraw that fails shows
its error in the status line and the next one tries again: a night-long page must
not die on one locked database.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

import ipywidgets as widgets

from qclib.dashboards.panels import esc, utc
from qclib.errors import QCError

INTERVALS = (
    ("every 30 seconds", 30.0),
    ("every minute", 60.0),
    ("every 2 minutes", 120.0),
    ("every 5 minutes", 300.0),
    ("every 15 minutes", 900.0),
    ("every hour", 3600.0),
)


class Refresher:
    """Calls ``draw`` now, then every interval, and when the button is pressed."""

    def __init__(self, draw: Callable[[], None], *, interval_s: float) -> None:
        self._draw = draw
        self._lock = threading.Lock()
        self._wake = threading.Event()
        options = list(INTERVALS)
        if all(abs(v - interval_s) > 1e-6 for _, v in options):
            options.append((f"every {interval_s:g} s", float(interval_s)))
            options.sort(key=lambda o: o[1])
        self.interval = widgets.Dropdown(
            options=options,
            value=float(interval_s),
            description="Refresh",
            layout=widgets.Layout(width="230px"),
        )
        self.button = widgets.Button(
            description="Refresh now", icon="refresh", layout=widgets.Layout(width="130px")
        )
        self.status = widgets.HTML()
        self.status.add_class("qc-refreshed")
        self.button.on_click(lambda _: self.refresh())
        self.interval.observe(lambda _: self._wake.set(), names="value")
        self.controls = widgets.HBox([self.interval, self.button, self.status])
        self._thread = threading.Thread(target=self._loop, name="dashboard-refresh", daemon=True)
        self.refresh()
        self._thread.start()

    def refresh(self) -> None:
        with self._lock:
            try:
                self._draw()
            except (QCError, OSError) as err:
                self._failed(str(err))
                return
            except Exception as err:
                # A bug, or the database gone away: in a thread nobody would see the
                # traceback, and the page would just stop refreshing. Say it on the page.
                self._failed(f"{type(err).__name__}: {err}")
                if threading.current_thread() is not self._thread:
                    raise
                return
            self.status.value = (
                f'<span style="color:#4b5563">last refreshed {esc(utc(_now()))}</span>'
            )

    def _failed(self, why: str) -> None:
        self.status.value = (
            f'<span style="color:#b91c1c">refresh failed at {esc(utc(_now()))}: '
            f"{esc(why)}; trying again at the next refresh</span>"
        )

    def _loop(self) -> None:
        while True:
            woken = self._wake.wait(timeout=float(self.interval.value))
            self._wake.clear()
            if not woken:
                self.refresh()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
