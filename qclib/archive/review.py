"""The review queue: what a QC scientist looks at before products are certified."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qclib.db import Database, qc1
from qclib.db import products as product_store
from qclib.qc.scoring import Grade, roll_up
from qclib.workspace import Workspace


@dataclass(frozen=True)
class ReviewItem:
    """A product waiting for a decision, with why it is reviewed."""

    product_id: int
    name: str
    instrument: str
    night: dt.date
    pro_catg: str
    ab_id: str
    status: str
    grade: Grade
    reasons: tuple[str, ...]
    report: Path | None

    @property
    def drawn(self) -> bool:
        """In the queue (NOK, tainted, ungraded or drawn), not waiting for ``auto``."""
        return bool(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["night"] = self.night.isoformat()
        out["report"] = str(self.report) if self.report else None
        out["reasons"] = list(self.reasons)
        return out


def report_path(workspace: Workspace, night: dt.date, ab_id: str) -> Path | None:
    """The HTML report of a block, if it has been written."""
    path = workspace.runs_dir / night.isoformat() / f"{ab_id}.html"
    return path if path.exists() else None


def review_queue(
    workspace: Workspace,
    database: Database,
    *,
    instrument: str | None = None,
    night: dt.date | None = None,
    include_undrawn: bool = False,
) -> list[ReviewItem]:
    """Graded products waiting for a decision: NOK first, then oldest night first.

    Without ``include_undrawn`` only those drawn for review (NOK, tainted, ungraded,
    or drawn at random); the others are certified by ``auto`` after the workspace's
    delay unless someone decides first.
    """
    items = []
    with database.transaction() as session:
        for product in product_store.products_in(session, ("scored",)):
            if instrument and product.instrument != instrument.upper():
                continue
            if night and product.night != night:
                continue
            reasons = tuple((product.review_reason or "").splitlines())
            if not reasons and not include_undrawn:
                continue
            grade = roll_up(g for _, _, g, _ in qc1.product_scores(session, product.id))
            items.append(
                ReviewItem(
                    product.id,
                    product.name,
                    product.instrument,
                    product.night,
                    product.pro_catg,
                    product.ab_id,
                    product.status,
                    grade,
                    reasons,
                    report_path(workspace, product.night, product.ab_id),
                )
            )
    items.sort(key=lambda i: (i.grade != "NOK", not i.reasons, i.night, i.product_id))
    return items
