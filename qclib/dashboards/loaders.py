"""What the dashboards show, read from the database: plain values, no widgets.

The same loaders feed the live dashboards and ``qc publish``'s static pages. Nothing
here writes.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from qclib.associate import AssociationBlock
from qclib.db import Database, ingest_log, ob_grades, qc1
from qclib.db import blocks as block_store
from qclib.db import passes as pass_store
from qclib.db import products as product_store
from qclib.db.ingest_log import QuarantineEntry
from qclib.instruments import load_instrument
from qclib.qc.scoring import roll_up_levels
from qclib.recipes.registry import find_recipe, missing_recipe_reason
from qclib.workflow.calchecker import CalibrationStatus, calibration_status
from qclib.workflow.science import ON_REQUEST
from qclib.workspace import Workspace

__all__ = ["CalibrationStatus", "calibration_status"]  # calChecker's, used here too

#: A block's state as the monitor shows it, in the order it shows them.
STATES = ("failed", "waiting", "queued", "running", "done")


@dataclass(frozen=True)
class BlockLine:
    """One association block on the monitor."""

    ab_id: str
    instrument: str
    action: str
    night: str
    state: str  # one of STATES
    reason: str | None
    attempts: int
    grade: str | None  # rolled up over its graded values
    nok: tuple[str, ...]  # the NOK values in words (parameter, detectors, product)
    report: str | None  # path of its HTML report, relative to parameterized_runs/


@dataclass(frozen=True)
class NightOverview:
    night: dt.date
    blocks: list[BlockLine]
    grades: dict[str, str]  # instrument -> the night's grade

    @property
    def counts(self) -> Counter[str]:
        return Counter(b.state for b in self.blocks)


def monitor_nights(database: Database) -> list[dt.date]:
    """Nights with association blocks, newest first."""
    with database.transaction() as session:
        every = block_store.list_blocks(session)
    return sorted({dt.date.fromisoformat(b.night) for b in every}, reverse=True)


def _block_state(
    block: AssociationBlock,
    state: str,
    reason: str | None,
    attempts: int,
    *,
    states: dict[str, tuple[str, str | None]],
    max_retries: int,
) -> tuple[str, str | None]:
    """The monitor's state of a block and what to say about it."""
    if state == "done":
        return "done", None
    if state == "failed":
        if attempts > max_retries:
            return "failed", f"{reason} (not retried after {attempts} attempts)"
        return "failed", f"{reason} (attempt {attempts}; retried by the next pass)"
    if state == "running":
        return "running", reason
    if state == ON_REQUEST:  # science nobody asked for yet
        return "waiting", reason
    if block.completeness != "complete":
        return "waiting", f"incomplete: {block.reason or 'frames missing'}"
    if find_recipe(block.recipe, block.instrument) is None:
        return "waiting", missing_recipe_reason(block.action, block.recipe, block.instrument)
    for parent in block.parents:
        parent_state, parent_reason = states.get(parent, ("created", None))
        if parent_state == "failed":
            return "waiting", f"parent {parent} failed: {parent_reason}"
        if parent_state != "done":
            return "waiting", f"for parent {parent}"
    return "queued", reason or "the next pass processes it"


def _nok_summary(levels: dict[tuple[str, ...], str], block: tuple[str, ...]) -> list[str]:
    """The NOK values of a block in words: 'QC.RON on ESO_CCD_#74 (MASTER_BIAS)'."""
    where: dict[tuple[str, str], list[str]] = {}
    for path, grade in levels.items():
        if len(path) == 6 and path[:3] == block and grade == "NOK":
            where.setdefault((path[5], path[3]), []).append(path[4])
    return [
        f"{parameter} on {', '.join(sorted(detectors))} ({pro_catg})"
        for (parameter, pro_catg), detectors in sorted(where.items())
    ]


def night_overview(
    workspace: Workspace,
    database: Database,
    night: dt.date,
) -> NightOverview:
    """The night's blocks with their state, grade and report; failed first."""
    with database.transaction() as session:
        blocks = block_store.list_blocks(session, night=night)
        states = product_store.block_states(session)
        attempts = product_store.block_attempts(session)
        graded = qc1.graded_paths(session, night=night)
    levels = roll_up_levels(graded)
    max_retries = workspace.config.workflow.max_retries
    lines = []
    for block in blocks:
        state, reason = states.get(block.id, ("created", None))
        shown, why = _block_state(
            block,
            state,
            reason,
            attempts.get(block.id, 0),
            states=states,
            max_retries=max_retries,
        )
        path = (block.instrument, block.night, block.id)
        nok = _nok_summary(levels, path)
        report = workspace.runs_dir / block.night / f"{block.id}.html"
        lines.append(
            BlockLine(
                ab_id=block.id,
                instrument=block.instrument,
                action=block.action,
                night=block.night,
                state=shown,
                reason=why,
                attempts=attempts.get(block.id, 0),
                grade=levels.get(path),
                nok=tuple(nok),
                report=f"{block.night}/{report.name}" if report.exists() else None,
            )
        )
    lines.sort(key=lambda b: STATES.index(b.state))
    grades = {p[0]: g for p, g in levels.items() if len(p) == 2}
    return NightOverview(night, lines, grades)


def quarantined(database: Database) -> list[QuarantineEntry]:
    """Quarantined files not resolved, newest first."""
    with database.transaction() as session:
        entries = ingest_log.list_quarantine(session)
    return sorted(entries, key=lambda e: e.quarantined_at, reverse=True)


def night_grades(database: Database, night: dt.date) -> list[ob_grades.StoredGrade]:
    """The science OBs of a night graded against their constraints."""
    with database.transaction() as session:
        return ob_grades.list_grades(session, nights=[night])


def recent_passes(database: Database, n: int = 5) -> list[dict[str, Any]]:
    """The newest passes of ``qc run`` / ``qc watch``: started_at, finished_at, summary."""
    with database.transaction() as session:
        return pass_store.recent_passes(session, n)


@dataclass(frozen=True)
class HealthData:
    """An instrument's QC1 values with grades, limits and product status, and its events."""

    instrument: str
    values: pd.DataFrame
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def parameters(self) -> list[tuple[str, str]]:
        """(PRO.CATG, QC parameter) pairs with graded values, in a stable order."""
        if self.values.empty:
            return []
        graded = self.values[self.values["grade"].isin(["OK", "NOK"])]
        pairs = graded[["pro_catg", "parameter"]].drop_duplicates()
        return sorted((str(a), str(b)) for a, b in pairs.itertuples(index=False))

    @property
    def most_recent_nok(self) -> tuple[str, str] | None:
        """The parameter whose newest NOK value is the newest: where to look first."""
        if self.values.empty:
            return None
        nok = self.values[self.values["grade"] == "NOK"].sort_values("mid_mjd")
        if nok.empty:
            return None
        last = nok.iloc[-1]
        return str(last["pro_catg"]), str(last["parameter"])

    def detectors(self, pro_catg: str, parameter: str) -> list[str]:
        rows = self.series(pro_catg, parameter)
        return sorted(rows["detector"].astype(str).unique()) if not rows.empty else []

    def series(self, pro_catg: str, parameter: str, detector: str | None = None) -> pd.DataFrame:
        v = self.values
        if v.empty:
            return v
        rows = v[(v["pro_catg"] == pro_catg) & (v["parameter"] == parameter)]
        if detector is not None:
            rows = rows[rows["detector"] == detector]
        return rows.sort_values(["mid_mjd", "detector"])


def health_data(database: Database, instrument: str, *, days: int | None = None) -> HealthData:
    """Every QC value of ``instrument`` (the last ``days`` nights with data, if given)."""
    with database.transaction() as session:
        rows = qc1.export_rows(session, instrument=instrument.upper())
        events = qc1.list_events(session, instrument=instrument.upper())
    table = pd.DataFrame(rows)
    if not table.empty and days is not None:
        last = dt.date.fromisoformat(str(table["night"].max()))
        table = table[table["night"] >= (last - dt.timedelta(days=days)).isoformat()]
    return HealthData(instrument.upper(), table, events)


def instruments_with_values(workspace: Workspace, database: Database) -> list[str]:
    """The workspace's instruments that have graded QC values."""
    with database.transaction() as session:
        graded = qc1.graded_paths(session)
    have = {path[0] for path, _ in graded}
    names = [load_instrument(n).name for n in workspace.config.workspace.instruments]
    return [n for n in names if n in have]


@dataclass(frozen=True)
class ProductQC:
    """One product's QC values with their grades, for the certification page."""

    product_id: int
    rows: list[dict[str, Any]]  # detector, parameter, value, grade, reason


def product_qc(database: Database, product_id: int) -> ProductQC:
    with database.transaction() as session:
        values = product_store.qc_values(session, product_id)
        scores = {(d, n): (g, r) for n, d, g, r in qc1.product_scores(session, product_id)}
    rows = []
    for detector, named in sorted(values.items()):
        for name, value in sorted(named.items()):
            grade, reason = scores.get((detector, name), (None, "not graded"))
            rows.append(
                {
                    "detector": detector,
                    "parameter": name,
                    "value": value,
                    "grade": grade,
                    "reason": reason,
                }
            )
    order = {"NOK": 0, "UNSCORED": 1, "OK": 2, "MONITORED": 3, None: 4}
    rows.sort(key=lambda r: (order.get(r["grade"], 4), r["parameter"], r["detector"]))
    return ProductQC(product_id, rows)


def reviewer_exists(database: Database, name: str) -> bool:
    """Whether ``name`` still has a token (a removed reviewer's page may not decide)."""
    from qclib.db import reviewers as reviewer_store

    with database.transaction() as session:
        return any(r["name"] == name for r in reviewer_store.list_reviewers(session))
