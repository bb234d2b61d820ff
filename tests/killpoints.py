"""SIGKILL at a chosen point of a real ``qc`` command, for the kill tests.

The command runs unchanged in a subprocess; ``killpoints_site/sitecustomize.py`` (on
``PYTHONPATH``) calls ``install`` in every Python process it starts (the command, its
pool or Dask workers, report kernels) when ``QC_KILLPOINT`` names a point. The point's
function is wrapped so that, when the point is reached, ``reach`` records it in the
marker file (``QC_KILLPOINT_MARKER``: the point, the process that reached it, and every
descendant of the command's process at that moment), then kills the command's process
(``QC_KILLPOINT_ROOT``, the first process that installed the point) with SIGKILL. A
process other than the command then waits, doing nothing, so that only its parent's
death can end it: a worker that outlives its parent is seen alive by the test. A
process that reaches the point after another did waits too, whichever it is: nothing
done after the point (a second worker's join) may be recorded before the kill lands.

Production code holds no hook: the wrapped functions are found by name.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

POINT_ENV = "QC_KILLPOINT"
MARKER_ENV = "QC_KILLPOINT_MARKER"
ROOT_ENV = "QC_KILLPOINT_ROOT"
SITE_DIR = Path(__file__).resolve().parent / "killpoints_site"
#: How long a process other than the command waits after the kill before going on
#: (as a worker that outlived its parent would): far longer than the test waits.
LINGER_S = 60.0


@dataclass(frozen=True)
class KillPoint:
    """Where a point is: the function wrapped (module, attribute path), which of its
    calls reaches the point, and whether before or after the call."""

    module: str
    attribute: str
    call: int = 1
    when: str = "before"  # "before", "after", or "inside" (the wrapper decides)
    what: str = ""


def reach(point: str) -> None:
    """The point is reached: record it (first process only), kill the command."""
    marker = Path(os.environ[MARKER_ENV])
    root = int(os.environ[ROOT_ENV])
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        # Another process reached it first and is killing the command: going on would
        # let this one's work (a second worker's join) be recorded before the kill lands.
        time.sleep(LINGER_S)
        return
    import psutil

    try:
        descendants = [
            {"pid": p.pid, "ppid": p.ppid(), "cmdline": " ".join(p.cmdline())[:200]}
            for p in psutil.Process(root).children(recursive=True)
        ]
    except psutil.NoSuchProcess:
        descendants = []
    record = {"point": point, "pid": os.getpid(), "root": root, "descendants": descendants}
    os.write(fd, json.dumps(record).encode())
    os.fsync(fd)
    os.close(fd)
    os.kill(root, signal.SIGKILL)
    if os.getpid() != root:
        time.sleep(LINGER_S)


def _count_calls(point: str, spec: KillPoint, function: Callable[..., Any]) -> Callable[..., Any]:
    calls = 0

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == spec.call and spec.when == "before":
            reach(point)
        result = function(*args, **kwargs)
        if calls == spec.call and spec.when == "after":
            reach(point)
        return result

    return wrapper


def _during_product_write(point: str, spec: KillPoint, function: Callable[..., Any]) -> Any:
    """``write_product_part`` that is killed once its task's first detector is in the
    product's shared file (the recipe is half-way through writing)."""

    def detectors_then_kill(detectors: Iterable[Any]) -> Iterator[Any]:
        for det in detectors:
            yield det
            reach(point)  # the writer asks for the next: this one is written

    @functools.wraps(function)
    def wrapper(part: Any, spec_: Any, detectors: Iterable[Any], **kwargs: Any) -> Any:
        return function(part, spec_, detectors_then_kill(detectors), **kwargs)

    return wrapper


#: The points, each named for where the command is when it dies.
POINTS: dict[str, KillPoint] = {
    "ingest-moved": KillPoint(
        "qclib.workflow.ingest",
        "Ingester._index",
        call=4,
        what="the 4th raw file renamed into data/raw, not yet indexed (write-ahead row)",
    ),
    "after-ingest": KillPoint(
        "qclib.workflow.run",
        "ingest_paths",
        when="after",
        what="the inbox ingested, nothing associated",
    ),
    "recipe": KillPoint(
        "qclib.recipes.base",
        "write_product_part",
        when="inside",
        what="a worker's recipe has written one detector of its share of a product",
    ),
    "join": KillPoint(
        "qclib.products",
        "sha256_of",
        what="a worker finishing a product its tasks wrote in place, before hashing it",
    ),
    "record": KillPoint(
        "qclib.workflow.record",
        "record_products",
        call=2,
        what="the 2nd block's products written and renamed, not yet recorded",
    ),
    "report": KillPoint(
        "qclib.reports",
        "load_report",
        what="a report kernel (under a worker) is executing the report notebook",
    ),
    "archive-pending": KillPoint(
        "qclib.archive.store",
        "_copy_verified",
        call=2,
        what="the 2nd product's pending archive row committed, its copy not begun",
    ),
    "archive-copying": KillPoint(
        "qclib.archive.store",
        "verify_checksums",
        call=2,
        what="the 2nd product's archive copy written under its temporary name, "
        "not verified or renamed; its row pending",
    ),
    "archive-copied": KillPoint(
        "qclib.archive.store",
        "_copy_verified",
        call=2,
        when="after",
        what="the 2nd product's archive copy renamed into place; its row still pending",
    ),
}

_WRAPPERS = {"inside": _during_product_write}


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Applies ``patch`` to module ``name`` right after it is first executed: a process
    that never imports it (the multiprocessing resource tracker) pays nothing."""

    def __init__(self, name: str, patch: Callable[[ModuleType], None]) -> None:
        self.name = name
        self.patch = patch

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.loader is not None, name
        execute = spec.loader.exec_module

        def execute_and_patch(module: ModuleType) -> None:
            execute(module)
            self.patch(module)

        spec.loader.exec_module = execute_and_patch  # type: ignore[method-assign]
        return spec


def install(point: str) -> None:
    """Wrap the function of ``point`` in this process (from ``sitecustomize``), when
    its module is imported."""
    spec = POINTS[point]
    os.environ.setdefault(ROOT_ENV, str(os.getpid()))

    def patch(module: ModuleType) -> None:
        owner: Any = module
        *path, name = spec.attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        wrap = _WRAPPERS.get(spec.when, _count_calls)
        setattr(owner, name, wrap(point, spec, getattr(owner, name)))

    if spec.module in sys.modules:
        patch(sys.modules[spec.module])
    else:
        sys.meta_path.insert(0, _PatchOnImport(spec.module, patch))


def read_marker(path: Path) -> dict[str, Any] | None:
    """What ``reach`` recorded, or None when no process reached the point."""
    return json.loads(path.read_text()) if path.exists() else None


def environment(point: str, marker: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a command to be killed at ``point``."""
    env = dict(os.environ if base is None else base)
    env.pop(ROOT_ENV, None)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(SITE_DIR), root, env.get("PYTHONPATH", "")) if p
    )
    env[POINT_ENV] = point
    env[MARKER_ENV] = str(marker)
    return env
