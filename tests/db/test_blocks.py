"""Stored association blocks come back as the typed blocks association made, from the
JSON the database has always held (both backends)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sqlalchemy import select

from qclib.associate import AssociationBlock
from qclib.db import blocks as block_store
from qclib.db.models import AssociationBlockRow
from qclib.workflow.association import associate_workspace
from qclib.workflow.calchecker import indexed_blocks
from qclib.workflow.ingest import ingest_paths

#: The stored JSON's keys, in order: unchanged, so existing workspaces read as before.
STORED_KEYS = [
    "id",
    "instrument",
    "action",
    "recipe",
    "night",
    "mid_mjd",
    "inputs",
    "input_category",
    "setup",
    "products",
    "calibrations",
    "completeness",
    "reason",
    "parents",
]


def test_stored_blocks_read_back_typed_and_equal(
    workspace, omegacam_night: Path, hawki_night: Path
) -> None:
    db = workspace.open_database()
    try:
        ingest_paths(workspace, db, [omegacam_night, hawki_night])
        associate_workspace(workspace, db)
        with db.transaction() as session:
            rows = list(session.scalars(select(AssociationBlockRow)))
            contents = {row.id: (row.instrument, row.rules_digest, row.content) for row in rows}
            stored = {
                name: block_store.list_blocks(session, instrument=name)
                for name in ("OMEGACAM", "HAWKI")
            }
            one = block_store.get_block(session, stored["HAWKI"][-1].id)
            missing = block_store.get_block(session, "no such block")
        assert len(contents) == 8 + 10
        for _instrument, _digest, content in contents.values():
            assert list(content) == STORED_KEYS
            assert AssociationBlock.from_dict(content).as_dict() == content
        for name, blocks in stored.items():
            assert all(isinstance(b, AssociationBlock) for b in blocks)
            assert blocks == indexed_blocks(db, name)  # what association made, typed
            assert [b.as_dict() for b in blocks] == [contents[b.id][2] for b in blocks]
        assert one == stored["HAWKI"][-1] and missing is None

        # Storing the typed blocks read back changes nothing; a block with one more raw
        # frame is a change.
        digest = contents[stored["OMEGACAM"][0].id][1]
        first, *rest = stored["OMEGACAM"]
        grown = dataclasses.replace(first, inputs=(*first.inputs, "EXTRA.fits"))
        with db.transaction() as session:
            same = block_store.store_blocks(session, "OMEGACAM", stored["OMEGACAM"], digest)
        with db.transaction() as session:
            changed = block_store.store_blocks(session, "OMEGACAM", [grown, *rest], digest)
        with db.transaction() as session:
            assert block_store.get_block(session, first.id) == grown
        assert same == (0, 0, 0) and changed == (0, 1, 0)
    finally:
        db.close()
