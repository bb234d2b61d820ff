"""Bookkeeping as the history grows: incremental association gives what a whole one
gives, and one more night costs the same SQL statements on a long history as on a
short one (no query or loop over the whole history; bench/bench_bookkeeping.py has
the timings)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event

from qclib.db import blocks as block_store
from qclib.db import ingest_log
from qclib.db import products as product_store
from qclib.instruments import load_instrument
from qclib.simulate import headers as hdr
from qclib.simulate.plan import plan_night
from qclib.simulate.sky import detector_wcs
from qclib.workflow.association import associate_workspace
from qclib.workflow.ingest import ingest_paths

FIRST = dt.date(2026, 3, 1)
SCALE = "test"


def write_night(
    out: Path, night: dt.date, *, instruments: tuple[str, ...] = ("OMEGACAM", "HAWKI"),
    skip: frozenset[str] = frozenset(),
) -> Path:  # fmt: skip
    """One night of raw files with the simulator's headers and no pixels (the data
    space of each detector is a hole in a sparse file); exposures of the kinds in
    ``skip`` are left out."""
    folder = out / night.isoformat()
    folder.mkdir(parents=True)
    for name in instruments:
        config = load_instrument(name)
        geometry = config.geometry[SCALE]
        padded = -(-geometry.naxis1 * geometry.naxis2 * abs(geometry.bitpix) // 8 // 2880) * 2880
        extensions = [
            hdr.header_bytes(
                hdr.extension_header(
                    config,
                    geometry,
                    d.extname,
                    config.detectors.index(d) + 1,
                    detector_wcs(config, geometry, d.extname, 150.0, -30.0),
                    2.0,
                    5.0,
                )
            )
            for d in config.detectors_at(SCALE)
        ]
        for exposure in plan_night(config, night, seed=3, scale=SCALE)[0]:
            if exposure.kind in skip:
                continue
            primary = hdr.header_bytes(hdr.primary_header(config, exposure, len(extensions)))
            with open(folder / exposure.arcfile, "wb") as handle:
                handle.write(primary)
                position = len(primary)
                for ext in extensions:
                    handle.seek(position)
                    handle.write(ext)
                    position += len(ext) + padded
                handle.truncate(position)
    return folder


def _stored(db) -> dict[str, dict]:
    with db.transaction() as session:
        return {b.id: b.as_dict() for b in block_store.list_blocks(session)}


@contextmanager
def _no_whole_history(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail if association reads every frame of an instrument (its whole-history path)
    or every QC decision of its products."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("association read the whole history")

    decisions = product_store.qc_decisions

    def some_decisions(session, instrument, ab_ids=None):
        if ab_ids is None:
            raise AssertionError("association read every QC decision")
        return decisions(session, instrument, ab_ids)

    with monkeypatch.context() as patch:
        patch.setattr(ingest_log, "list_frames", refuse)
        patch.setattr(product_store, "qc_decisions", some_decisions)
        yield


def test_incremental_association_equals_a_whole_one(
    workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nights arriving one by one, one late, one without biases or flats, and a QC
    decision: after each pass the stored blocks are those a whole association of
    every frame gives (re-associating everything changes nothing)."""
    db = workspace.open_database()
    night = [FIRST + dt.timedelta(days=i) for i in range(6)]
    skip_calibrations = frozenset({"bias", "dome_flat", "twilight_flat"})
    arrivals = [
        write_night(tmp_path / "raw", night[0]),
        write_night(tmp_path / "raw", night[1], skip=skip_calibrations),
        write_night(tmp_path / "raw", night[3]),
        write_night(tmp_path / "raw", night[2]),  # late
        write_night(tmp_path / "raw", night[5], skip=frozenset({"dark"})),
    ]
    ingest_paths(workspace, db, [arrivals[0]])
    first = associate_workspace(workspace, db)
    assert first.changes["OMEGACAM"][0] > 0
    for folder in arrivals[1:]:
        ingest_paths(workspace, db, [folder])
        with _no_whole_history(monkeypatch):
            step = associate_workspace(workspace, db)
        incremental = _stored(db)
        whole = associate_workspace(workspace, db, full=True)
        assert whole.changes == dict.fromkeys(whole.changes, (0, 0, 0)), folder.name
        assert _stored(db) == incremental
        assert step.blocks == whole.blocks and step.incomplete == whole.incomplete
        assert step.frames == whole.frames and step.unclassified == whole.unclassified
    # A QC decision (a master bias rejected) alone redoes the blocks near it.
    rejected = next(
        b for b in _stored(db).values()
        if b["action"] == "MASTER_BIAS" and b["night"] == night[2].isoformat()
        and b["instrument"] == "OMEGACAM"
    )  # fmt: skip
    with db.transaction() as session:
        product_id = product_store.add_product(
            session,
            ab_id=rejected["id"],
            instrument="OMEGACAM",
            pro_catg="MASTER_BIAS",
            night=night[2],
            mid_mjd=rejected["mid_mjd"],
            path=f"data/products/{rejected['id']}_MASTER_BIAS.fits",
            sha256="0" * 64,
            header={},
            provenance={},
            qc={},
            units={},
        )
        product_store.set_product_status(session, product_id, "rejected")
    with _no_whole_history(monkeypatch):
        step = associate_workspace(workspace, db)
    assert step.changes["OMEGACAM"][1] > 0  # blocks that chose that bias changed
    incremental = _stored(db)
    reasons = [
        why
        for b in incremental.values()
        for tag in b["calibrations"]
        for ref, why in ((r["ref"], r["reason"]) for r in tag["runners_up"])
        if ref == f"{rejected['id']}:MASTER_BIAS"
    ]
    assert reasons and all("rejected by QC" in why for why in reasons)
    whole = associate_workspace(workspace, db, full=True)
    assert whole.changes == dict.fromkeys(whole.changes, (0, 0, 0))
    assert _stored(db) == incremental
    db.close()


def _statements_for_one_more_night(workspace, db, history: list[Path], extra: Path) -> int:
    """SQL statements that ingesting and associating ``extra`` issues on ``history``."""
    for folder in history:
        ingest_paths(workspace, db, [folder])
    associate_workspace(workspace, db)
    count = 0

    def counted(*_args) -> None:
        nonlocal count
        count += 1

    event.listen(db.engine, "before_cursor_execute", counted)
    try:
        ingest_paths(workspace, db, [extra])
        associate_workspace(workspace, db)
    finally:
        event.remove(db.engine, "before_cursor_execute", counted)
    return count


@pytest.mark.slow
def test_one_more_night_costs_the_same_statements_on_a_4x_history(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ingest and association of one night issue as many SQL statements on a history
    of 12 nights as on one of 3: nothing loops over the history in SQL."""
    from qclib.workspace import init_workspace

    counts = []
    for nights, url in ((3, db_url), (12, None)):
        if url is None:  # a second, fresh database of the same kind
            url = (
                f"sqlite:///{tmp_path / 'long.sqlite'}"
                if db_url.startswith("sqlite")
                else db_url.rsplit("/", 1)[0] + "/" + _new_pg_database(db_url)
            )
        monkeypatch.setenv("QC_DB_URL", url)
        workspace = init_workspace(tmp_path / f"ws{nights}")
        db = workspace.open_database()
        raw = tmp_path / f"raw{nights}"
        folders = [
            write_night(raw, FIRST + dt.timedelta(days=i), instruments=("OMEGACAM",))
            for i in range(nights + 1)
        ]
        counts.append(_statements_for_one_more_night(workspace, db, folders[:-1], folders[-1]))
        db.close()
    assert counts[1] == counts[0] > 0, counts


@pytest.mark.slow
def test_one_more_night_redoes_the_same_blocks_on_a_2x_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One more night re-associates as many blocks (calibration tags selected) on a
    history of 16 nights as on one of 8, although both lie within the reach of
    association (30 d OmegaCAM, 60 d HAWK-I): only blocks with a new frame or a changed
    block within their horizon are redone, not every block within the reach."""
    from qclib import associate
    from qclib.workspace import init_workspace

    calls = []
    select = associate._select

    def counted(*args, **kwargs):
        calls.append(args[2])  # the block's mid-time
        return select(*args, **kwargs)

    counts = []
    for nights in (8, 16):
        monkeypatch.setenv("QC_DB_URL", f"sqlite:///{tmp_path / f'{nights}.sqlite'}")
        workspace = init_workspace(tmp_path / f"ws{nights}")
        db = workspace.open_database()
        folders = [write_night(tmp_path / f"raw{nights}", FIRST + dt.timedelta(days=i))
                   for i in range(nights + 1)]  # fmt: skip
        for folder in folders[:-1]:
            ingest_paths(workspace, db, [folder])
        associate_workspace(workspace, db)
        ingest_paths(workspace, db, [folders[-1]])
        calls.clear()
        with monkeypatch.context() as patch:
            patch.setattr(associate, "_select", counted)
            step = associate_workspace(workspace, db)
        counts.append(len(calls))
        last = FIRST + dt.timedelta(days=nights)
        assert hdr_mjd(last) - min(calls) < 8, nights  # no block older than a week redone
        whole = associate_workspace(workspace, db, full=True)
        assert whole.changes == dict.fromkeys(whole.changes, (0, 0, 0)), nights
        assert step.changes["OMEGACAM"][0] > 0
        db.close()
    assert counts[0] == counts[1] > 0, counts


def hdr_mjd(night: dt.date) -> float:
    """MJD at noon UTC of a date (nights' frames come after it)."""
    return (night - dt.date(1858, 11, 17)).days + 0.5


def test_one_more_night_scans_no_history_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No statement that ingest, association and processing's look-up issue for one
    more night reads every row of a table that grows with the history, or every row
    of an instrument (SQLite's query plan of each: a SCAN of frames, ingest_sources,
    association_blocks or products, or a SEARCH of one by instrument alone that is
    not answered from the index; counting the index entries is)."""
    import sqlite3

    from qclib.recipes.registry import recipe_names
    from qclib.workspace import init_workspace

    path = tmp_path / "qc.sqlite"
    monkeypatch.setenv("QC_DB_URL", f"sqlite:///{path}")
    workspace = init_workspace(tmp_path / "ws")
    db = workspace.open_database()
    folders = [write_night(tmp_path / "raw", FIRST + dt.timedelta(days=i)) for i in range(3)]
    for folder in folders[:-1]:
        ingest_paths(workspace, db, [folder])
    associate_workspace(workspace, db)
    statements = []

    def grab(_conn, _cursor, statement, parameters, _context, executemany) -> None:
        statements.append((statement, parameters[0] if executemany else parameters))

    event.listen(db.engine, "before_cursor_execute", grab)
    try:
        ingest_paths(workspace, db, [folders[-1]])
        associate_workspace(workspace, db)
        with db.transaction() as session:
            product_store.unfinished_blocks(session, recipes=recipe_names())
    finally:
        event.remove(db.engine, "before_cursor_execute", grab)
    db.close()
    history = ("frames", "ingest_sources", "association_blocks", "products")
    with sqlite3.connect(path) as connection:
        scans = {
            statement.split(" FROM ")[0][:60] + " ...": detail
            for statement, parameters in statements
            if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE"))
            for *_, detail in connection.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            if (detail.startswith("SCAN") or detail.endswith(" (instrument=?)"))
            and "COVERING INDEX" not in detail
            and detail.split()[1] in history
        }
    assert len(statements) > 50 and scans == {}


def _new_pg_database(url: str) -> str:
    import uuid

    import psycopg

    host = url.split("@", 1)[1].rsplit("/", 1)[0]
    hostname, port = host.split(":")
    name = f"qc_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(
        f"host={hostname} port={port} user=qc dbname=postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def test_sparse_night_files_are_what_ingest_takes(workspace, tmp_path: Path) -> None:
    """The header-only nights these tests (and the benchmark) use are ingested whole."""
    folder = write_night(tmp_path / "raw", FIRST, instruments=("HAWKI",))
    files = sorted(folder.glob("*.fits"))
    db = workspace.open_database()
    outcomes = ingest_paths(workspace, db, [folder])
    db.close()
    assert len(outcomes) == len(files) > 20
    assert {o.status for o in outcomes} == {"ingested"}
