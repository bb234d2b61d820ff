"""calChecker over a workspace: OK / NOK / MISS per science setup of its last nights,
from the stored association blocks (``qclib.calchecker`` decides; this reads). Used by
``qc calchecker``, the calChecker dashboard and ``qc publish``."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from qclib.calchecker import SetupCheck, check_calibrations
from qclib.db import Database
from qclib.db import blocks as block_store
from qclib.instruments import load_instrument, load_rules
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


def calibration_status(
    workspace: Workspace, database: Database, *, nights: int = 7, until: dt.date | None = None
) -> CalibrationStatus:
    """OK / NOK / MISS per science setup of the last ``nights`` nights (``qc calchecker``)."""
    with database.transaction() as session:
        every = block_store.list_blocks(session)
    newest = max((dt.date.fromisoformat(b["night"]) for b in every), default=dt.date.today())
    end = until or newest
    start = end - dt.timedelta(days=nights - 1)
    recent = [b for b in every if start <= dt.date.fromisoformat(b["night"]) <= end]
    checks: list[SetupCheck] = []
    for name in workspace.config.workspace.instruments:
        config = load_instrument(name)
        mine = [b for b in recent if b["instrument"] == config.name]
        checks += check_calibrations(load_rules(name), config.association, mine)
    order = {"MISS": 0, "NOK": 1, "OK": 2}
    checks.sort(key=lambda c: (order[c.verdict], c.instrument, c.action, str(c.setup)))
    return CalibrationStatus(start, end, checks)
