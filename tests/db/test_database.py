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


def test_upgrade_queues_the_decisions_association_has_not_taken(db_url: str) -> None:
    """Migration 0011 replaces the copy of decisions association kept by a queue: the
    blocks whose decisions differ from the copy (a product certified since, one whose
    decision went) are queued, those that agree are not."""
    import json

    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from qclib.db import products as product_store
    from qclib.db.database import MIGRATIONS

    engine = sa.create_engine(db_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0010")
    taken = {
        "A_MASTER_BIAS:MASTER_BIAS": ["certified", "a.fits certified"],  # still certified
        "B_MASTER_BIAS:MASTER_BIAS": ["rejected", "b.fits rejected by QC: never used"],  # gone
    }
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO association_state (instrument, rules_digest, last_frame_id, "
                "decisions, updated_at) VALUES ('OMEGACAM', 'x', 0, :d, :t)"
            ),
            {"d": json.dumps(taken), "t": now},
        )
        for ab_id, status in (("A_MASTER_BIAS", "archived"), ("C_MASTER_BIAS", "certified")):
            connection.execute(
                sa.text(
                    "INSERT INTO products (ab_id, instrument, pro_catg, night, mid_mjd, path, "
                    "sha256, status, header, provenance, created_at) VALUES (:ab, 'OMEGACAM', "
                    "'MASTER_BIAS', :night, 61000.0, :path, :sha, :status, '{}', '{}', :t)"
                ),
                {
                    "ab": ab_id,
                    "night": dt.date(2026, 1, 1),
                    "path": f"data/products/{ab_id}.fits",
                    "sha": "0" * 64,
                    "status": status,
                    "t": now,
                },
            )
    engine.dispose()
    db = open_database(db_url)
    with db.transaction() as session:
        queued = product_store.decision_changes(session, "OMEGACAM")
    assert sorted(queued.values()) == ["B_MASTER_BIAS", "C_MASTER_BIAS"]
    db.close()
