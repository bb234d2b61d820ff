"""calChecker over a workspace: OK / NOK / MISS per science setup of its last nights,
judged on the frames indexed now (``qclib.calchecker`` decides; this reads).

The frames are classified with the current rules and associated in memory, exactly
as ``qc associate`` would (nothing is stored): a night ingested a moment ago is judged
at once, whether or not its association blocks have been stored yet. Used by
``qc calchecker``, the calChecker dashboard and ``qc publish``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from qclib.associate import AssociationBlock, build_association_blocks
from qclib.calchecker import SetupCheck, check_calibrations
from qclib.classify import classify_header
from qclib.db import Database, ingest_log
from qclib.db import products as product_store
from qclib.instruments import load_instrument, load_rules
from qclib.workflow.association import as_raw_frame
from qclib.workspace import Workspace


@dataclass(frozen=True)
class CalibrationStatus:
    """calChecker: every science setup of the nights ``start`` .. ``end``."""

    start: dt.date
    end: dt.date
    checks: list[SetupCheck]

    @property
    def verdicts(self) -> Counter[str]:
        return Counter(c.verdict for c in self.checks)

    @property
    def to_take(self) -> list[str]:
        """What to take tonight: each needed calibration once, MISS before NOK."""
        order = {"MISS": 0, "NOK": 1, "OK": 2}
        seen: dict[str, int] = {}
        for check in self.checks:
            for c in check.calibrations:
                if c.action_required:
                    text = f"{check.instrument}: {c.action_required}"
                    seen[text] = min(seen.get(text, 9), order[c.verdict])
        return sorted(seen, key=lambda t: (seen[t], t))


def indexed_blocks(database: Database, instrument: str) -> list[AssociationBlock]:
    """The association blocks that the frames indexed now form
    under the instrument's current rules and the QC decisions taken so far.

    Nothing is written: this is what ``qc associate`` would store at this moment.
    """
    config = load_instrument(instrument)
    rules = load_rules(instrument)
    with database.transaction() as session:
        frames = ingest_log.list_frames(session, instrument=config.name)
        decisions = product_store.qc_decisions(session, config.name)
    raw = []
    for frame in frames:
        result = classify_header(rules, frame.keywords)
        if result.classified:
            raw.append(as_raw_frame(frame, result))
    return build_association_blocks(rules, config.association, raw, decisions=decisions)


def calibration_status(
    workspace: Workspace, database: Database, *, nights: int = 7, until: dt.date | None = None
) -> CalibrationStatus:
    """OK / NOK / MISS per science setup of the last ``nights`` nights up to ``until``
    (default: the newest night with frames), from the frames indexed now."""
    if nights < 1:
        raise ValueError(f"calChecker looks at 1 night or more, not {nights}")
    every = {
        name: indexed_blocks(database, name) for name in workspace.config.workspace.instruments
    }
    newest = max(
        (dt.date.fromisoformat(b.night) for blocks in every.values() for b in blocks),
        default=dt.date.today(),
    )
    end = until or newest
    start = end - dt.timedelta(days=nights - 1)
    checks: list[SetupCheck] = []
    for name, blocks in every.items():
        recent = [b for b in blocks if start <= dt.date.fromisoformat(b.night) <= end]
        checks += check_calibrations(load_rules(name), load_instrument(name).association, recent)
    order = {"MISS": 0, "NOK": 1, "OK": 2}
    checks.sort(key=lambda c: (order[c.verdict], c.instrument, c.action, str(c.setup)))
    return CalibrationStatus(start, end, checks)
