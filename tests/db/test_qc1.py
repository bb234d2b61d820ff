"""QC1 queries (SQLite and PostgreSQL): a value's certified history is the brute-force
one (setups, statuses, missing values, products taken at the same time, recorded out of
time order), read newest first in bounded batches; the values a pass grades."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, text

from qclib.db import open_database, qc1
from qclib.db import products as product_store
from qclib.db.products import CERTIFIED_STATES

INSTRUMENT, CATEGORY = "OMEGACAM", "READ_GAIN"
DETECTORS = ("ESO_CCD_#65", "ESO_CCD_#66")
#: The history's setups (its instrument's READ_GAIN keywords), most common first: a
#: keyword set to None and one the header lacks are the same setup; the last is rare.
SETUPS: tuple[dict[str, Any], ...] = (
    {"INS.FILT1.NAME": "r_SDSS", "EXPTIME": 10.0, "DET.READ.CLOCK": "normal"},
    {"INS.FILT1.NAME": "g_SDSS", "EXPTIME": 10.0, "DET.READ.CLOCK": "normal"},
    {"INS.FILT1.NAME": "r_SDSS", "EXPTIME": 10, "DET.READ.CLOCK": None},
    {"INS.FILT1.NAME": "r_SDSS", "EXPTIME": 0.1 + 0.2, "DET.READ.CLOCK": None},
)
WEIGHTS = (10, 5, 3, 1)
STATUSES = ("certified",) * 8 + ("archived", "superseded", "rejected", "scored", "candidate")


@dataclass(frozen=True)
class Made:
    """A product of the history as recorded."""

    id: int
    mid_mjd: float
    status: str
    header: dict[str, Any]
    qc: dict[str, dict[str, float | None]]


def add_history(session: Any, *, size: int = 240, seed: int = 3) -> list[Made]:
    """``size`` products of one category recorded in random order (ids are not time
    order), up to five taken at the same time, in the four ``SETUPS`` (a keyword set to
    None in some headers, left out of others), of every status, a few values missing;
    and products of another category and another instrument with the same parameters
    at the same times."""
    rng = random.Random(seed)
    times: list[float] = []
    while len(times) < size:
        mid_mjd = (times[-1] if times else 61000.0) + rng.choice((0.25, 0.5, 1.0))
        times += [mid_mjd] * rng.choice((1, 1, 2, 3, 5))
    times = times[:size]
    rng.shuffle(times)
    made = []
    for i, mid_mjd in enumerate(times):
        setup = rng.choices(SETUPS, WEIGHTS)[0]
        header = {"OBJECT": "FLAT"} | {
            key: value for key, value in setup.items() if value is not None or i % 2
        }
        qc: dict[str, dict[str, float | None]] = {
            detector: {
                "QC.GAIN": None if rng.random() < 0.05 else rng.gauss(2.5, 0.1),
                "QC.RON.ELECTRONS": rng.gauss(5.0, 0.2),
            }
            for detector in DETECTORS
        }
        status = rng.choice(STATUSES)
        made.append(Made(_add(session, CATEGORY, mid_mjd, header, qc, status), mid_mjd, status,
                         header, qc))  # fmt: skip
    for i, mid_mjd in enumerate(sorted(set(times))[::7]):
        header = SETUPS[0] | {"OBJECT": "FLAT"}
        qc = {detector: {"QC.GAIN": 100.0 + i} for detector in DETECTORS}
        _add(session, "MASTER_BIAS", mid_mjd, header, qc, "certified")
        _add(session, CATEGORY, mid_mjd, header, qc, "certified", instrument="HAWKI")
    if session.bind.dialect.name == "postgresql":
        # As autovacuum would within a minute: without statistics PostgreSQL joins the
        # products to their values by a nested loop with a filter, 36 ms a query here.
        session.execute(text("ANALYZE"))
    return made


def _add(
    session: Any,
    pro_catg: str,
    mid_mjd: float,
    header: dict[str, Any],
    qc: dict[str, dict[str, float | None]],
    status: str,
    *,
    instrument: str = INSTRUMENT,
) -> int:
    name = f"{instrument}.{pro_catg}.{mid_mjd:.2f}.{random.random():.12f}"
    product_id = product_store.add_product(
        session,
        ab_id=name,
        instrument=instrument,
        pro_catg=pro_catg,
        night=dt.date(1858, 11, 17) + dt.timedelta(days=int(mid_mjd)),
        mid_mjd=mid_mjd,
        path=f"data/products/{name}.fits",
        sha256="0" * 64,
        header=header,
        provenance={},
        qc=qc,  # type: ignore[arg-type]  # a missing value is None
        units={},
    )
    if status != "candidate":
        product_store.set_product_status(session, product_id, status)
    return product_id


def _item(mid_mjd: float, setup: dict[str, Any], detector: str, parameter: str) -> qc1.ValueToScore:
    night = dt.date(1858, 11, 17) + dt.timedelta(days=int(mid_mjd))
    return qc1.ValueToScore(
        0, 0, INSTRUMENT, CATEGORY, night, mid_mjd, parameter, detector, 1.0, setup
    )


def _brute_force(made: list[Made], item: qc1.ValueToScore, n: int) -> list[float]:
    """The history by its definition: every product of the category, filtered and
    sorted here."""
    earlier = sorted(
        (
            p
            for p in made
            if p.status in CERTIFIED_STATES
            and p.mid_mjd < item.mid_mjd
            and all(p.header.get(key) == value for key, value in item.setup.items())
            and p.qc[item.detector][item.parameter] is not None
        ),
        key=lambda p: (p.mid_mjd, p.id),
    )
    return [p.qc[item.detector][item.parameter] for p in earlier][-n:]  # type: ignore[misc]


def test_certified_history_is_the_brute_force_one(db_url: str) -> None:
    db = open_database(db_url)
    with db.transaction() as session:
        made = add_history(session)
    times = sorted({p.mid_mjd for p in made})
    tied = [t for t in times if sum(p.mid_mjd == t for p in made) > 1]
    # Before products taken at the same time, within the history, after all of it.
    cuts = [tied[5], tied[len(tied) // 2], times[len(times) // 3], times[-1], times[-1] + 1]
    compared = 0
    with db.transaction() as session:
        for mid_mjd in cuts:
            for setup in SETUPS:
                for detector in DETECTORS:
                    for parameter in ("QC.GAIN", "QC.RON.ELECTRONS"):
                        for n in (1, 3, 20, 1000):
                            item = _item(mid_mjd, setup, detector, parameter)
                            expected = _brute_force(made, item, n)
                            assert qc1.certified_history(session, item, n) == expected, (
                                mid_mjd, setup, detector, parameter, n
                            )  # fmt: skip
                            compared += bool(expected)
        assert qc1.reference_value(session, item) == _brute_force(made, item, 1)[-1]
    assert compared > 250
    db.close()


def test_history_is_read_newest_first_in_bounded_batches(db_url: str) -> None:
    """Each query of a history carries a LIMIT: one query when the newest products
    have the setup, a few (batches that double) for a rare one, never one per row."""
    db = open_database(db_url)
    with db.transaction() as session:
        made = add_history(session)
    statements: list[str] = []

    def grab(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    end = max(p.mid_mjd for p in made) + 1
    event.listen(db.engine, "before_cursor_execute", grab)
    try:
        with db.transaction() as session:
            common = _item(end, SETUPS[0], DETECTORS[0], "QC.RON.ELECTRONS")
            assert len(qc1.certified_history(session, common, 3)) == 3
            assert len(statements) == 1 and " LIMIT " in statements[0]
            statements.clear()
            rare = _item(end, SETUPS[-1], DETECTORS[0], "QC.RON.ELECTRONS")
            found = qc1.certified_history(session, rare, 3)
            assert found == _brute_force(made, rare, 3) and len(found) == 3
            assert 1 < len(statements) < 6 and all(" LIMIT " in s for s in statements)
    finally:
        event.remove(db.engine, "before_cursor_execute", grab)
    db.close()


def test_values_to_score(db_url: str) -> None:
    """The candidates' values, and those no rule could grade of products waiting for a
    decision once an earlier product of their category is certified; no others."""
    db = open_database(db_url)
    qc = {DETECTORS[0]: {"QC.GAIN": 2.5}}
    with db.transaction() as session:
        waiting = [_add(session, CATEGORY, t, {}, qc, "scored") for t in (61000, 61001, 61002)]
        candidate = _add(session, CATEGORY, 61003.0, {}, qc, "candidate")
        for item in qc1.values_to_score(session, lambda *_: {}, rescore=True):
            grade = "OK" if item.product_id == waiting[2] else "UNSCORED"
            qc1.save_score(session, item, grade=grade, reason="", rule=None, low=None, high=None)
        session.flush()
        # Nothing certified yet: what could not be graded still cannot.
        assert [i.product_id for i in qc1.values_to_score(session, lambda *_: {})] == [candidate]
        _add(session, CATEGORY, 61000.5, {}, qc, "certified")
        _add(session, "MASTER_BIAS", 60000.0, {}, qc, "certified")
        _add(session, CATEGORY, 60000.0, {}, qc, "certified", instrument="HAWKI")
        items = qc1.values_to_score(session, lambda *_: {})
        assert [i.product_id for i in items] == [waiting[1], candidate]
        assert len(qc1.values_to_score(session, lambda *_: {}, instrument="HAWKI")) == 0
    db.close()
