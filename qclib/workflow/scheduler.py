"""Units of work run in dependency order, on any executor or here, one after another.

A unit (an association block, to the workflow) is planned once its parents in the
same run have finished: planning gives its part tasks (a block's runs of detectors)
and, when there are several, how to join their results in one more task. Its parts run
wherever the executor puts them; when they are all in, the join runs; then the unit is
reported to a callback (which records it) and its children may start. A unit whose
planning, part or join raises one of the ``expected`` errors ends with that error:
its other parts are cancelled where not yet started, those made are handed back to
be discarded, and its children are not started (they are reported blocked, naming
it). Any other error propagates, as does an error of the callback; the run stops
there, and running it again over the units not reported finishes it.

Tasks are handed to the executor no more than ``slots`` at a time (its workers), the
most urgent first: joins (their unit's children wait for them), then the parts of
units with the most descendants. So a join never queues behind parts submitted
before it, and the executor holds no backlog that the order cannot reach. A plan may
say how much memory each of its parts needs (an ESO job: MUSE's all-detector flat
takes about 21 GB); tasks then run together only while their needs fit the memory
budget, and one that needs more than the whole budget runs alone.

No database and no recipes here: ``qclib.workflow.process`` gives the units and the
plans, and records what is reported.
"""

from __future__ import annotations

import concurrent.futures
import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

#: A task: a function and its positional arguments (picklable for a process pool).
Task = tuple[Callable[..., Any], tuple[Any, ...]]


@dataclass(frozen=True)
class Unit:
    """A unit of work: its id, the ids it depends on, and its failed attempts so far
    (in earlier runs: what the retry policy counts)."""

    id: str
    parents: tuple[str, ...] = ()
    attempts: int = 0


@dataclass(frozen=True)
class Plan:
    """How a ready unit runs: its part tasks, the join of their results (given the
    parts' results, the task that joins them; needed when there are several parts),
    and what to do with the parts made when the unit fails."""

    parts: Sequence[Task]
    join: Callable[[list[Any]], Task] | None = None
    discard: Callable[[list[Any]], None] = field(default=lambda made: None)
    memory_mb: int = 0
    """Memory each part needs at most (0: not counted against the budget)."""

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError("a plan needs at least one part task")
        if len(self.parts) > 1 and self.join is None:
            raise ValueError(f"{len(self.parts)} part tasks and no join")


@dataclass(frozen=True)
class RetryPolicy:
    """Whether a unit that failed before is tried again: up to ``max_retries`` more
    times after its first failure (None: no limit)."""

    max_retries: int | None = None

    def admits(self, unit: Unit) -> bool:
        return self.max_retries is None or unit.attempts <= self.max_retries


ReportStatus = Literal["done", "error", "blocked", "exhausted"]


@dataclass(frozen=True)
class Report:
    """How a unit ended: ``done`` (its ``result``), ``error`` (one of the expected
    errors), ``blocked`` (``parent`` did not finish: its report is ``cause``) or
    ``exhausted`` (the retry policy does not admit it; never started)."""

    unit: Unit
    status: ReportStatus
    result: Any = None
    error: BaseException | None = None
    parent: str | None = None
    cause: Report | None = None


def descendant_counts(units: Iterable[Unit]) -> dict[str, int]:
    """How many units depend on each unit, directly or not (its urgency).

    >>> descendant_counts([Unit("a"), Unit("b", ("a",)), Unit("c", ("b",))])
    {'a': 2, 'b': 1, 'c': 0}
    """
    units = list(units)
    children: dict[str, set[str]] = {u.id: set() for u in units}
    for unit in units:
        for parent in unit.parents:
            if parent in children:
                children[parent].add(unit.id)
    below: dict[str, set[str]] = {}

    def visit(uid: str, path: frozenset[str]) -> set[str]:
        if uid not in below:
            found: set[str] = set()
            for child in children[uid]:
                if child not in path:  # a cycle is cut, not followed
                    found |= {child} | visit(child, path | {child})
            below[uid] = found
        return below[uid]

    return {u.id: len(visit(u.id, frozenset({u.id}))) for u in units}


@dataclass
class _Running:
    """A unit started: its plan, the parts' results (or errors) as they come in."""

    unit: Unit
    plan: Plan
    made: dict[int, Any] = field(default_factory=dict)
    error: BaseException | None = None
    outstanding: int = 0


def run_units(
    units: Sequence[Unit],
    plan: Callable[[Unit], Plan],
    on_report: Callable[[Report], None],
    *,
    executor: concurrent.futures.Executor | None = None,
    slots: int | None = None,
    policy: RetryPolicy = RetryPolicy(),
    expected: tuple[type[BaseException], ...] = (),
    memory_mb: int | None = None,
) -> dict[str, Report]:
    """Run ``units`` in dependency order; report each as it ends; return the reports.

    Parameters
    ----------
    units
        In the order to prefer among equals (e.g. time order). Parents that are not
        among them count as finished.
    plan
        Called here when a unit's parents have finished: its tasks. May raise one of
        ``expected`` (the unit then ends with that error).
    on_report
        Called here once per unit, as it ends, before any of its children starts.
    executor
        Where tasks run; None: here, one after another.
    slots
        Tasks handed to the executor at once (its workers; None: every ready task).
    policy
        Which units that failed before are started again.
    expected
        Errors that end a unit; any other propagates.
    memory_mb
        The executor's memory: tasks whose plans state a need are handed out only
        while the needs of those running fit it (one at a time when a need exceeds
        it); None: not limited.

    Returns
    -------
    dict
        Unit id -> its report, for every unit.
    """
    by_id = {u.id: u for u in units}
    order = {u.id: i for i, u in enumerate(units)}
    urgency = descendant_counts(units)
    reports: dict[str, Report] = {}
    started: dict[str, _Running] = {}
    waiting = dict(by_id)
    # Each waiting unit's parents in this run not reported yet; those with none are
    # startable, in ``order``. Counted down as units are reported: a whole history in
    # one run (50,000 blocks) scanned every waiting unit after each one ended.
    children: dict[str, list[str]] = {uid: [] for uid in by_id}
    unreported: dict[str, int] = {}
    for unit in units:
        parents = {p for p in unit.parents if p in by_id}
        unreported[unit.id] = len(parents)
        for parent in parents:
            children[parent].append(unit.id)
    startable = [order[uid] for uid, n in unreported.items() if n == 0]
    heapq.heapify(startable)
    ready: list[tuple[int, int, int, str, int | None]] = []  # a heap of tasks to submit
    running: dict[concurrent.futures.Future[Any], tuple[str, int | None]] = {}
    in_use: dict[concurrent.futures.Future[Any], int] = {}  # memory of running tasks

    def report(rep: Report) -> None:
        reports[rep.unit.id] = rep
        on_report(rep)
        for child in children[rep.unit.id]:
            unreported[child] -= 1
            if unreported[child] == 0:
                heapq.heappush(startable, order[child])

    ended: list[Report] = []  # units whose tasks are over, to be reported

    def unit_ended(run: _Running, rep: Report) -> None:
        del started[run.unit.id]
        ended.append(rep)

    def report_ended() -> None:
        while ended:
            report(ended.pop(0))

    def start_ready_units() -> None:
        """Start every unit whose parents have all been reported, in ``order`` (a
        unit blocked here may make its children startable in turn)."""
        while startable:
            unit = units[heapq.heappop(startable)]
            del waiting[unit.id]
            start(unit, [p for p in unit.parents if p in by_id])

    def start(unit: Unit, parents: list[str]) -> None:
        failed = next((p for p in parents if reports[p].status != "done"), None)
        if failed is not None:
            report(Report(unit, "blocked", parent=failed, cause=reports[failed]))
            return
        if not policy.admits(unit):
            report(Report(unit, "exhausted"))
            return
        try:
            made = plan(unit)
        except expected as err:
            report(Report(unit, "error", error=err))
            return
        started[unit.id] = _Running(unit, made, outstanding=len(made.parts))
        for index in range(len(made.parts)):
            heapq.heappush(ready, (1, -urgency[unit.id], order[unit.id], unit.id, index))

    def task_of(uid: str, index: int | None) -> Task:
        run = started[uid]
        if index is None:
            assert run.plan.join is not None
            return run.plan.join([run.made[i] for i in range(len(run.plan.parts))])
        return run.plan.parts[index]

    def settle(uid: str, index: int | None, result: Any, error: BaseException | None) -> None:
        """A task of unit ``uid`` ended (``index`` None: its join)."""
        run = started[uid]
        if error is not None and not isinstance(error, expected):
            raise error
        if index is None:
            if error is not None:
                run.plan.discard([run.made[i] for i in sorted(run.made)])
                unit_ended(run, Report(run.unit, "error", error=error))
            else:
                unit_ended(run, Report(run.unit, "done", result=result))
            return
        run.outstanding -= 1
        if error is not None:
            run.error = run.error or error
            cancel_parts(uid)
        else:
            run.made[index] = result
        if run.outstanding:
            return
        if run.error is not None:
            run.plan.discard([run.made[i] for i in sorted(run.made)])
            unit_ended(run, Report(run.unit, "error", error=run.error))
        elif len(run.plan.parts) == 1:
            unit_ended(run, Report(run.unit, "done", result=run.made[0]))
        else:
            heapq.heappush(ready, (0, -urgency[uid], order[uid], uid, None))

    def cancel_parts(uid: str) -> None:
        """A part failed: its siblings not yet handed out are dropped, and those
        queued in the executor are cancelled if they have not begun."""
        run = started[uid]
        kept = []
        for item in ready:
            if item[3] == uid and item[4] is not None:
                run.outstanding -= 1
            else:
                kept.append(item)
        ready[:] = kept
        heapq.heapify(ready)
        for future, (owner, index) in list(running.items()):
            if owner == uid and index is not None and future.cancel():
                del running[future]
                in_use.pop(future, None)
                run.outstanding -= 1

    def run_here(uid: str, index: int | None) -> None:
        fn, args = task_of(uid, index)
        try:
            result = fn(*args)
        except expected as err:
            settle(uid, index, None, err)
        else:
            settle(uid, index, result, None)

    def fits(uid: str, index: int | None) -> bool:
        """Whether the memory budget admits this task beside those running."""
        need = started[uid].plan.memory_mb if index is not None else 0
        if memory_mb is None or not need or not in_use:
            return True
        return sum(in_use.values()) + need <= memory_mb

    def hand_out() -> None:
        """Hand ready tasks to the executor while it has free slots and memory (here:
        run the most urgent, report it, plan what it made ready, and so on)."""
        while ready and (executor is None or slots is None or len(running) < slots):
            _, _, _, uid, index = ready[0]
            if executor is not None and not fits(uid, index):
                return  # the most urgent waits for memory; nothing overtakes it
            heapq.heappop(ready)
            if executor is None:
                run_here(uid, index)
                report_ended()
                start_ready_units()
            else:
                fn, args = task_of(uid, index)
                future = executor.submit(fn, *args)
                running[future] = (uid, index)
                if index is not None and started[uid].plan.memory_mb:
                    in_use[future] = started[uid].plan.memory_mb

    try:
        start_ready_units()
        while ready or running:
            hand_out()
            if not running:
                continue
            finished, _ = concurrent.futures.wait(
                running, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in finished:
                if future not in running:  # cancelled while settling a sibling
                    continue
                uid, index = running.pop(future)
                in_use.pop(future, None)
                error = future.exception()
                settle(uid, index, None if error is not None else future.result(), error)
            # Workers first: what is ready runs while the ended units are recorded.
            hand_out()
            report_ended()
            start_ready_units()
    finally:
        for future in running:
            future.cancel()
    for unit in waiting.values():  # only a cycle leaves units never started
        stuck = next(p for p in unit.parents if p in waiting)
        report(Report(unit, "blocked", parent=stuck))
    return reports
