"""The IR twilight flat writes its confidence product beside the flat, on a thread of
its own: a flat that fails part-way leaves neither product behind, and the block
fails with the flat's own error."""

from __future__ import annotations

from pathlib import Path

import pytest

from qclib.db import blocks as block_store
from qclib.errors import UnprocessableDataError
from qclib.recipes import master_flat
from qclib.workflow.association import associate_workspace
from qclib.workflow.ingest import ingest_paths
from qclib.workflow.process import process_blocks
from qclib.workspace import init_workspace


def test_a_flat_failing_part_way_leaves_no_product_and_says_why(
    tmp_path: Path, hawki_night: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QC_DB_URL", raising=False)
    workspace = init_workspace(tmp_path / "ws", ["HAWKI"])
    database = workspace.open_database()
    ingest_paths(workspace, database, [hawki_night])
    associate_workspace(workspace, database)
    with database.transaction() as session:
        ids = [b.id for b in block_store.list_blocks(session)]
    flats = [i for i in ids if i.endswith("_MASTER_TWILIGHT_FLAT")]
    darks = [i for i in ids if i.endswith("_MASTER_DARK")]
    assert flats and darks
    process_blocks(workspace, database, ids=darks, max_retries=0)

    made = master_flat.make_master_flat
    calls: list[int] = []

    def second_detector_breaks(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise UnprocessableDataError("the second detector of this flat is broken")
        return made(*args, **kwargs)

    monkeypatch.setattr(master_flat, "make_master_flat", second_detector_breaks)
    [outcome] = process_blocks(workspace, database, ids=flats[:1], max_retries=0)
    database.close()
    assert outcome.status == "failed"
    assert "the second detector of this flat is broken" in (outcome.reason or "")
    assert len(calls) >= 2
    left = [p.name for p in workspace.root.rglob(f"*{flats[0]}*") if p.is_file()]
    assert left == [], left
