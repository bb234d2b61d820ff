"""The database opens and migrates on SQLite and PostgreSQL; transactions are atomic."""

from __future__ import annotations

import datetime as dt

import pytest

from qclib.db import ingest_log, open_database
from qclib.errors import ConfigError
from qclib.frames import FrameInfo


def _frame(arcfile: str = "OMEGACAM.2026-11-23T17:00:00.000.fits") -> FrameInfo:
    return FrameInfo(
        arcfile=arcfile,
        instrument="OMEGACAM",
        night=dt.date(2026, 11, 23),
        mjd_obs=61367.7,
        date_obs="2026-11-23T17:00:00.000",
        exptime_s=0.0,
        dpr_catg="CALIB",
        dpr_type="BIAS",
        dpr_tech="IMAGE",
        object="BIAS",
        tpl_id="OMEGACAM_img_cal_bias",
        tpl_start="2026-11-23T17:00:00",
        prog_id="60.A-9800(A)",
        filters="r_SDSS",
        detectors=("ESO_CCD_#65",),
        keywords={"DPR.CATG": "CALIB", "EXPTIME": 0.0},
    )


def test_migrations_create_tables_and_are_idempotent(db_url: str) -> None:
    db = open_database(db_url)
    assert {"frames", "quarantine", "ingest_sources", "alembic_version"} <= set(db.table_names())
    db.close()
    again = open_database(db_url)  # second migration run: nothing to do, no error
    assert "frames" in again.table_names()
    again.close()


def test_frame_round_trip(db_url: str) -> None:
    db = open_database(db_url)
    with db.transaction() as session:
        frame_id = ingest_log.add_frame(
            session,
            _frame(),
            path="data/raw/x.fits",
            sha256="a" * 64,
            size_bytes=10,
            source_path="/in/x.fits",
        )
    with db.transaction() as session:
        stored = ingest_log.frame_by_sha256(session, "a" * 64)
        listed = ingest_log.list_frames(session, night=dt.date(2026, 11, 23))
    assert stored is not None and stored.id == frame_id
    assert stored.keywords == {"DPR.CATG": "CALIB", "EXPTIME": 0.0}
    assert [f.arcfile for f in listed] == [stored.arcfile]
    db.close()


def test_transaction_rolls_back_on_error(db_url: str) -> None:
    db = open_database(db_url)
    with pytest.raises(RuntimeError), db.transaction() as session:
        ingest_log.add_frame(
            session, _frame(), path="p", sha256="b" * 64, size_bytes=1, source_path="/s"
        )
        raise RuntimeError("interrupted mid-transaction")
    with db.transaction() as session:
        assert ingest_log.list_frames(session) == []
    db.close()


def test_unique_arcfile_is_enforced(db_url: str) -> None:
    from sqlalchemy.exc import IntegrityError

    db = open_database(db_url)
    with db.transaction() as session:
        ingest_log.add_frame(
            session, _frame(), path="p", sha256="c" * 64, size_bytes=1, source_path="/s"
        )
    with pytest.raises(IntegrityError), db.transaction() as session:
        ingest_log.add_frame(
            session, _frame(), path="q", sha256="d" * 64, size_bytes=1, source_path="/t"
        )
    db.close()


def test_unreachable_database_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot open the database"):
        open_database("postgresql+psycopg://qc@127.0.0.1:1/nothing")


def test_bad_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not usable"):
        open_database("nosuchdialect://x")
