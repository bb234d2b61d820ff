"""The scheduler of units (blocks) and their part tasks, with fake tasks: dependency
order, a failing parent's children waiting with the reason, a failing part failing its
unit (its siblings' parts discarded), the retry policy, the same outcomes serially and
on pools, the most urgent task first, and a killed run finished by running it again."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from qclib.workflow.scheduler import (
    Plan,
    Report,
    RetryPolicy,
    Unit,
    descendant_counts,
    run_units,
)


class BrokenError(Exception):
    """What a fake task raises when its unit cannot be made (an expected error)."""


class Killed(BaseException):
    """The run dies (a kill): not an expected error."""


def make_part(uid: str, index: int, fail: bool = False) -> str:
    """A fake part task (module level: picklable for a process pool)."""
    if fail:
        raise BrokenError(f"{uid} part {index} broken")
    return f"{uid}.{index}"


def join(uid: str, parts: list[str]) -> str:
    return f"{uid}=" + "+".join(parts)


#: A small night: a -> (b, c); b -> d; e stands alone.
NIGHT = [
    Unit("a"),
    Unit("b", ("a",)),
    Unit("c", ("a",)),
    Unit("d", ("b",)),
    Unit("e"),
]


class Fake:
    """Plans fake units of ``parts`` part tasks each; remembers everything."""

    def __init__(
        self,
        parts: int = 2,
        failing: dict[str, int] | None = None,
        units: list[Unit] = NIGHT,
    ) -> None:
        self.parts = parts
        self.known = {u.id for u in units}
        self.failing = failing or {}
        self.planned: list[str] = []
        self.reported: list[Report] = []
        self.discarded: dict[str, list[Any]] = {}

    def plan(self, unit: Unit) -> Plan:
        self.planned.append(unit.id)
        reported = {r.unit.id for r in self.reported}
        for parent in set(unit.parents) & self.known:  # reported before a child is planned
            assert parent in reported, (unit.id, parent)
        return Plan(
            [(make_part, (unit.id, i, self.failing.get(unit.id) == i)) for i in range(self.parts)],
            join=lambda made, uid=unit.id: (join, (uid, made)),
            discard=lambda made, uid=unit.id: self.discarded.setdefault(uid, []).extend(made),
        )

    def on_report(self, report: Report) -> None:
        self.reported.append(report)

    def outcomes(self) -> dict[str, tuple[str, Any]]:
        return {r.unit.id: _outcome(r) for r in self.reported}


def _outcome(report: Report) -> tuple[str, Any]:
    if report.status == "done":
        return ("done", report.result)
    if report.status == "error":
        return ("error", str(report.error))
    if report.status == "blocked":
        return ("blocked", report.parent)
    return (report.status, None)


@pytest.fixture(params=["serial", "threads", "processes"])
def executor(request) -> Iterator[concurrent.futures.Executor | None]:
    if request.param == "serial":
        yield None
    elif request.param == "threads":
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            yield pool
    else:
        with concurrent.futures.ProcessPoolExecutor(
            2, mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            yield pool


def test_parents_are_reported_before_their_children_start(executor) -> None:
    fake = Fake()
    reports = run_units(NIGHT, fake.plan, fake.on_report, executor=executor, slots=2)
    assert fake.outcomes() == {u.id: ("done", f"{u.id}={u.id}.0+{u.id}.1") for u in NIGHT}
    assert set(reports) == {u.id for u in NIGHT}
    order = [r.unit.id for r in fake.reported]
    assert order.index("a") < order.index("b") < order.index("d")
    assert order.index("a") < order.index("c")


def test_a_failing_part_fails_its_unit_and_its_made_parts_are_discarded(executor) -> None:
    # b's second part fails; its first part was made (or cancelled before it began).
    fake = Fake(parts=3, failing={"b": 1})
    run_units(NIGHT, fake.plan, fake.on_report, executor=executor, slots=2, expected=(BrokenError,))
    outcomes = fake.outcomes()
    assert outcomes["b"] == ("error", "b part 1 broken")
    assert outcomes["d"] == ("blocked", "b")  # the child waits, naming its parent
    assert next(r.cause for r in fake.reported if r.unit.id == "d").error is not None
    assert "d" not in fake.planned
    assert {k: v[0] for k, v in outcomes.items()} == {
        "a": "done",
        "b": "error",
        "c": "done",
        "d": "blocked",
        "e": "done",
    }
    assert "b.1" not in fake.discarded["b"]  # the failed part made nothing
    assert set(fake.discarded["b"]) <= {"b.0", "b.2"}
    assert set(fake.discarded) == {"b"}  # no other unit's parts are touched


def test_serial_and_pools_give_the_same_outcomes() -> None:
    runs = []
    for kind in ("serial", "threads", "processes"):
        fake = Fake(parts=2, failing={"c": 0})
        if kind == "serial":
            run_units(NIGHT, fake.plan, fake.on_report, expected=(BrokenError,))
        else:
            pool_class = (
                concurrent.futures.ThreadPoolExecutor
                if kind == "threads"
                else concurrent.futures.ProcessPoolExecutor
            )
            kwargs = (
                {"mp_context": multiprocessing.get_context("spawn")} if kind != "threads" else {}
            )
            with pool_class(2, **kwargs) as pool:
                run_units(
                    NIGHT,
                    fake.plan,
                    fake.on_report,
                    executor=pool,
                    slots=2,
                    expected=(BrokenError,),
                )
        runs.append(fake.outcomes())
    assert runs[0] == runs[1] == runs[2]
    assert runs[0]["c"] == ("error", "c part 0 broken")


def test_an_unexpected_error_propagates() -> None:
    fake = Fake(parts=1, failing={"a": 0})
    with pytest.raises(BrokenError, match="a part 0 broken"):
        run_units(NIGHT, fake.plan, fake.on_report)  # BrokenError is not expected here


def test_a_unit_that_cannot_be_planned_ends_with_the_error() -> None:
    fake = Fake()

    def plan(unit: Unit) -> Plan:
        if unit.id == "a":
            raise BrokenError("a: raw X is not in the index")
        return fake.plan(unit)

    run_units(NIGHT, plan, fake.on_report, expected=(BrokenError,))
    outcomes = fake.outcomes()
    assert outcomes["a"] == ("error", "a: raw X is not in the index")
    assert outcomes["b"] == outcomes["c"] == ("blocked", "a")
    assert outcomes["d"] == ("blocked", "b")  # blocked in turn
    assert outcomes["e"][0] == "done"


def test_the_retry_policy_admits_units_up_to_the_limit() -> None:
    units = [Unit("a", attempts=2), Unit("b", ("a",)), Unit("c", attempts=3)]
    fake = Fake(parts=1, units=units)
    run_units(units, fake.plan, fake.on_report, policy=RetryPolicy(max_retries=2))
    assert fake.outcomes() == {
        "a": ("done", "a.0"),
        "b": ("done", "b.0"),
        "c": ("exhausted", None),
    }
    assert "c" not in fake.planned
    assert RetryPolicy(None).admits(Unit("x", attempts=100))


def test_joins_and_urgent_units_go_first() -> None:
    """One slot: each join runs as soon as its parts are in, and the unit with the
    most descendants starts first (a before e, though e comes first in time)."""
    ran: list[str] = []
    lock = threading.Lock()

    def part(uid: str, index: int) -> str:
        with lock:
            ran.append(f"{uid}.{index}")
        return f"{uid}.{index}"

    def joined(uid: str, parts: list[str]) -> str:
        with lock:
            ran.append(f"{uid}=")
        return uid

    units = [Unit("e"), Unit("a"), Unit("b", ("a",)), Unit("c", ("b",))]

    def plan(unit: Unit) -> Plan:
        return Plan(
            [(part, (unit.id, 0)), (part, (unit.id, 1))],
            join=lambda made, uid=unit.id: (joined, (uid, made)),
        )

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        run_units(units, plan, lambda r: None, executor=pool, slots=1)
    assert ran[:3] == ["a.0", "a.1", "a="]
    assert ran.index("b=") == ran.index("b.1") + 1
    assert descendant_counts(units) == {"e": 0, "a": 2, "b": 1, "c": 0}


def test_tasks_run_at_once_up_to_the_slots() -> None:
    """Two slots on a pool of four: never more than two tasks at a time, and two do
    run together (the parts of one unit, on two workers)."""
    busy = 0
    peak = 0
    lock = threading.Lock()

    def part(uid: str, index: int) -> str:
        nonlocal busy, peak
        with lock:
            busy += 1
            peak = max(peak, busy)
        time.sleep(0.05)
        with lock:
            busy -= 1
        return uid

    def plan(unit: Unit) -> Plan:
        return Plan(
            [(part, (unit.id, i)) for i in range(3)],
            join=lambda made: (len, (made,)),
        )

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        run_units([Unit("a"), Unit("b")], plan, lambda r: None, executor=pool, slots=2)
    assert peak == 2


def test_tasks_run_together_only_while_their_memory_fits() -> None:
    """A budget of 10 GB on four workers: units needing 4 GB run two at a time, one
    needing 21 GB (ESO's MUSE flat over 24 detectors) runs alone, and units that state
    no need are not held back by it."""
    running: dict[str, int] = {}
    peaks: list[int] = []
    together: list[set[str]] = []
    lock = threading.Lock()
    needs = {"small1": 4000, "small2": 4000, "small3": 4000, "huge": 21000, "free": 0}

    def part(uid: str) -> str:
        with lock:
            running[uid] = needs[uid]
            peaks.append(sum(running.values()))
            together.append(set(running))
        time.sleep(0.05)
        with lock:
            del running[uid]
        return uid

    def plan(unit: Unit) -> Plan:
        return Plan([(part, (unit.id,))], memory_mb=needs[unit.id])

    units = [Unit(u) for u in needs]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        reports = run_units(units, plan, lambda r: None, executor=pool, slots=4, memory_mb=10000)
    assert {r.status for r in reports.values()} == {"done"}
    assert all(
        peak <= 10000 for peak, seen in zip(peaks, together, strict=True) if "huge" not in seen
    )
    assert all(seen - {"free"} == {"huge"} for seen in together if "huge" in seen)
    assert any(len(seen - {"free"}) == 2 for seen in together)  # two 4-GB jobs at once


@pytest.mark.parametrize("kind", ["serial", "threads"])
def test_a_killed_run_resumes_to_the_uninterrupted_end(kind: str) -> None:
    """The callback records into a store; the run dies as it records the 3rd unit.
    Running again over the units not recorded ends as one uninterrupted run."""

    def once(units: list[Unit], store: dict[str, Any], kill_at: int | None) -> None:
        fake = Fake(parts=2, failing={"c": 1}, units=units)

        def record(report: Report) -> None:
            if kill_at is not None and len(store) + 1 == kill_at:
                raise Killed
            store[report.unit.id] = _outcome(report)
            fake.on_report(report)

        pool = concurrent.futures.ThreadPoolExecutor(2) if kind == "threads" else None
        try:
            run_units(units, fake.plan, record, executor=pool, slots=2, expected=(BrokenError,))
        finally:
            if pool is not None:
                pool.shutdown()

    uninterrupted: dict[str, Any] = {}
    once(NIGHT, uninterrupted, None)
    store: dict[str, Any] = {}
    with pytest.raises(Killed):
        once(NIGHT, store, 3)
    assert len(store) == 2
    once([u for u in NIGHT if u.id not in store], store, None)
    assert store == uninterrupted


def test_a_cycle_is_reported_blocked_not_hung() -> None:
    units = [Unit("x", ("y",)), Unit("y", ("x",)), Unit("z")]
    fake = Fake(parts=1, units=units)
    run_units(units, fake.plan, fake.on_report)
    outcomes = fake.outcomes()
    assert outcomes["z"] == ("done", "z.0")
    assert outcomes["x"][0] == outcomes["y"][0] == "blocked"


def test_a_plan_needs_a_join_for_several_parts() -> None:
    with pytest.raises(ValueError, match="2 part tasks and no join"):
        Plan([(make_part, ("a", 0)), (make_part, ("a", 1))])
    with pytest.raises(ValueError, match="at least one part"):
        Plan([])
