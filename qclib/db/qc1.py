"""The QC1 database: every QC value with its score, history queries, exports, events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from qclib.db.database import IN_CHUNK
from qclib.db.models import ProductRow, QCValueRow, QualityEventRow, ScoreRow
from qclib.db.products import CERTIFIED_STATES, UNDECIDED_STATES, same_setup


@dataclass(frozen=True)
class ValueToScore:
    qc_value_id: int
    product_id: int
    instrument: str
    pro_catg: str
    night: dt.date
    mid_mjd: float
    parameter: str
    detector: str
    value: float | None
    setup: dict[str, Any]
    """The product's setup: what its history is of (``InstrumentConfig.setup_of``)."""


SetupOf = Callable[[str, str, Mapping[str, Any]], dict[str, Any]]
"""(instrument, PRO.CATG, product header) -> the product's setup."""


def values_to_score(
    session: Session, setup_of: SetupOf, *, instrument: str | None = None, rescore: bool = False
) -> list[ValueToScore]:
    """QC values without a score (every one with ``rescore``), oldest first.

    Without ``rescore``: the values of products not graded yet (candidates), and those a
    rule could not grade (a history too short, no reference) while their product waits
    for a decision, if an earlier product of their category has been certified (what
    they lacked may now exist). The review queue's backlog of ungradable values in a
    category never certified is not read again.
    """
    base = select(QCValueRow, ProductRow).join(ProductRow, QCValueRow.product_id == ProductRow.id)
    if instrument:
        base = base.where(ProductRow.instrument == instrument)
    if rescore:
        queries = [base]
    else:
        waiting = [status for status in UNDECIDED_STATES if status != "candidate"]
        unscored = (
            select(ScoreRow.id)
            .where(ScoreRow.qc_value_id == QCValueRow.id, ScoreRow.grade == "UNSCORED")
            .exists()
        )
        # The waiting products holding an ungraded value are read from the review queue
        # (by status), the first certified product of each of their categories once,
        # and only the values of the products after it are read again. An EXISTS per
        # value walked the category's earlier products for each (at 10,000 blocks of
        # the bookkeeping bench: its 2,232 waiting values of a category never certified
        # cost 180-225 ms a pass on PostgreSQL); so did a GROUP BY over all products.
        queued = _queued_ungraded(session, waiting, instrument)
        firsts = {c: _first_certified(session, *c) for c in {c for _, c, _ in queued}}
        again = [i for i, c, t in queued if firsts[c] is not None and t > firsts[c]]
        queries = [base.where(ProductRow.status == "candidate")]
        for start in range(0, len(again), IN_CHUNK):
            queries.append(base.where(ProductRow.id.in_(again[start : start + IN_CHUNK]), unscored))
    rows = [row for query in queries for row in session.execute(query)]
    rows.sort(key=lambda row: (row[1].mid_mjd, row[0].id))
    return [
        ValueToScore(
            v.id,
            p.id,
            p.instrument,
            p.pro_catg,
            p.night,
            p.mid_mjd,
            v.name,
            v.detector,
            v.value,
            setup_of(p.instrument, p.pro_catg, p.header),
        )
        for v, p in rows
    ]


def _queued_ungraded(
    session: Session, waiting: Sequence[str], instrument: str | None
) -> list[tuple[int, tuple[str, str], float]]:
    """(id, (instrument, PRO.CATG), mid-exposure MJD) of the waiting products that hold
    a value no rule graded: read from the review queue, not from the ungraded values
    (which include every empty value of the history's certified products)."""
    ungraded = (
        select(ScoreRow.id)
        .where(ScoreRow.product_id == ProductRow.id, ScoreRow.grade == "UNSCORED")
        .exists()
    )
    query = select(
        ProductRow.id, ProductRow.instrument, ProductRow.pro_catg, ProductRow.mid_mjd
    ).where(ProductRow.status.in_(waiting), ungraded)
    if instrument:
        query = query.where(ProductRow.instrument == instrument)
    return [(i, (name, category), t) for i, name, category, t in session.execute(query)]


def _first_certified(session: Session, instrument: str, pro_catg: str) -> float | None:
    """The mid-exposure MJD of the oldest certified product of a category: its products
    walked from the oldest (their index) up to the first certified one."""
    return session.scalar(
        select(ProductRow.mid_mjd)
        .where(
            ProductRow.instrument == instrument,
            ProductRow.pro_catg == pro_catg,
            ProductRow.status.in_(CERTIFIED_STATES),
        )
        .order_by(ProductRow.mid_mjd)
        .limit(1)
    )


def certified_history(session: Session, item: ValueToScore, n: int) -> list[float]:
    """The last ``n`` values of the same parameter, detector and setup in certified
    products taken before this one, oldest first (of products taken at the same time,
    the one recorded first). Reads what the session has flushed."""
    matching = (
        select(QCValueRow.value, ProductRow.header, ProductRow.mid_mjd, ProductRow.id)
        .join(ProductRow, QCValueRow.product_id == ProductRow.id)
        .where(
            ProductRow.instrument == item.instrument,
            ProductRow.pro_catg == item.pro_catg,
            ProductRow.status.in_(CERTIFIED_STATES),
            QCValueRow.name == item.parameter,
            QCValueRow.detector == item.detector,
        )
        .order_by(ProductRow.mid_mjd.desc(), ProductRow.id.desc())
    )
    # Newest first, a batch at a time below the last (mid_mjd, product id) read (a
    # product has one value per parameter and detector), until n values of the setup
    # are found; the setup is compared here, from the header. The LIMIT makes
    # PostgreSQL walk the category's products back by their index and stop (1.2 ms
    # with 50,000 products); unbounded, it plans to read and sort every value of the
    # parameter and detector in the history (6,000 rows: 116 ms warm, 336 ms cold),
    # which only a server-side cursor's planning for its first rows had avoided.
    # Batches start at 2n (one query when most products share the setup) and double
    # (a few queries, not hundreds, for a rare setup). Rows are decoded as read,
    # through the connection: the ORM decodes a batch at once (40 % more headers).
    out: list[float] = []
    below = ProductRow.mid_mjd < item.mid_mjd
    batch = max(2 * n, 8)
    while True:
        read = 0
        with session.connection().execute(matching.where(below).limit(batch)) as rows:
            for row in rows:
                read += 1
                if row.value is not None and same_setup(row.header, item.setup):
                    out.append(float(row.value))
                    if len(out) == n:
                        return out[::-1]
        if read < batch:
            return out[::-1]
        below = (ProductRow.mid_mjd <= row.mid_mjd) & (
            (ProductRow.mid_mjd < row.mid_mjd) | (ProductRow.id < row.id)
        )
        batch *= 2


def reference_value(session: Session, item: ValueToScore) -> float | None:
    """The same parameter and detector in the newest earlier certified product of the
    same setup."""
    history = certified_history(session, item, 1)
    return history[-1] if history else None


def scores_of(session: Session, qc_value_ids: Sequence[int]) -> dict[int, ScoreRow]:
    """The stored scores of these QC values (those scored before), by QC value id."""
    ids = list(qc_value_ids)
    found: dict[int, ScoreRow] = {}
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        for row in session.scalars(select(ScoreRow).where(ScoreRow.qc_value_id.in_(chunk))):
            found[row.qc_value_id] = row
    return found


def save_score(
    session: Session,
    item: ValueToScore,
    *,
    grade: str,
    reason: str,
    rule: str | None,
    low: float | None,
    high: float | None,
    stored: dict[int, ScoreRow] | None = None,
) -> bool:
    """Insert or replace the score of one QC value; whether anything changed.
    ``stored``: the scores of the values being saved (``scores_of``), read at once
    instead of one query per value."""
    if stored is None:
        stored = scores_of(session, [item.qc_value_id])
    row = stored.get(item.qc_value_id)
    if row is None:
        row = ScoreRow(qc_value_id=item.qc_value_id, product_id=item.product_id)
        session.add(row)
        stored[item.qc_value_id] = row
    elif (row.grade, row.reason, row.rule, row.low, row.high) == (grade, reason, rule, low, high):
        return False
    row.grade, row.reason, row.rule, row.low, row.high = grade, reason, rule, low, high
    row.scored_at = dt.datetime.now(dt.UTC)
    return True


def export_rows(
    session: Session,
    *,
    instrument: str | None = None,
    parameter: str | None = None,
    since: dt.date | None = None,
) -> list[dict[str, Any]]:
    """Every QC value with its product, score and rule: the QC1 table."""
    query = (
        select(QCValueRow, ProductRow, ScoreRow)
        .join(ProductRow, QCValueRow.product_id == ProductRow.id)
        .outerjoin(ScoreRow, ScoreRow.qc_value_id == QCValueRow.id)
        .order_by(ProductRow.mid_mjd, ProductRow.id, QCValueRow.detector, QCValueRow.name)
    )
    if instrument:
        query = query.where(ProductRow.instrument == instrument)
    if parameter:
        query = query.where(QCValueRow.name == parameter)
    if since:
        query = query.where(ProductRow.night >= since)
    return [
        {
            "instrument": p.instrument,
            "night": p.night.isoformat(),
            "mid_mjd": p.mid_mjd,
            "ab_id": p.ab_id,
            "pro_catg": p.pro_catg,
            "product": p.path.rsplit("/", 1)[-1],
            "status": p.status,
            "detector": v.detector,
            "parameter": v.name,
            "value": v.value,
            "unit": v.unit,
            "grade": s.grade if s else None,
            "reason": s.reason if s else None,
            "rule": s.rule if s else None,
            "low": s.low if s else None,
            "high": s.high if s else None,
        }
        for v, p, s in session.execute(query)
    ]


def product_scores(session: Session, product_id: int) -> list[tuple[str, str, str, str]]:
    """(parameter, detector, grade, reason) of every graded value of one product."""
    query = (
        select(QCValueRow.name, QCValueRow.detector, ScoreRow.grade, ScoreRow.reason)
        .join(ScoreRow, ScoreRow.qc_value_id == QCValueRow.id)
        .where(QCValueRow.product_id == product_id)
        .order_by(QCValueRow.detector, QCValueRow.name)
    )
    return [(n, d, g, r) for n, d, g, r in session.execute(query)]


def product_grades(session: Session, product_id: int) -> dict[str, dict[str, str]]:
    """detector -> parameter -> grade of one product."""
    query = (
        select(QCValueRow.detector, QCValueRow.name, ScoreRow.grade)
        .join(ScoreRow, ScoreRow.qc_value_id == QCValueRow.id)
        .where(QCValueRow.product_id == product_id)
    )
    out: dict[str, dict[str, str]] = {}
    for detector, name, grade in session.execute(query):
        out.setdefault(detector, {})[name] = grade
    return out


def graded_paths(
    session: Session, *, instrument: str | None = None, night: dt.date | None = None
) -> list[tuple[tuple[str, str, str, str, str, str], str]]:
    """Every graded value with its path: (instrument, night, block, product category,
    detector, parameter) and its grade, for ``roll_up_levels``."""
    query = (
        select(ProductRow, QCValueRow.detector, QCValueRow.name, ScoreRow.grade)
        .join(QCValueRow, QCValueRow.product_id == ProductRow.id)
        .join(ScoreRow, ScoreRow.qc_value_id == QCValueRow.id)
        .order_by(ProductRow.instrument, ProductRow.night, ProductRow.mid_mjd, ProductRow.id)
    )
    if instrument:
        query = query.where(ProductRow.instrument == instrument)
    if night:
        query = query.where(ProductRow.night == night)
    return [
        ((p.instrument, p.night.isoformat(), p.ab_id, p.pro_catg, detector, name), grade)
        for p, detector, name, grade in session.execute(query)
    ]


def add_event(session: Session, *, instrument: str, date: dt.date, text: str) -> int:
    row = QualityEventRow(
        instrument=instrument, date=date, text=text, created_at=dt.datetime.now(dt.UTC)
    )
    session.add(row)
    session.flush()
    return row.id


def list_events(session: Session, *, instrument: str | None = None) -> list[dict[str, Any]]:
    query = select(QualityEventRow).order_by(QualityEventRow.date, QualityEventRow.id)
    if instrument:
        query = query.where(QualityEventRow.instrument == instrument)
    return [
        {"id": r.id, "instrument": r.instrument, "date": r.date.isoformat(), "text": r.text}
        for r in session.scalars(query)
    ]
