"""A block's detectors shared among several tasks, each writing its own in place: byte
for byte the products of one task; a part that fails fails its block and leaves no
part behind."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import shutil
from pathlib import Path

import numpy as np
import pytest

from qclib.db import products as product_store
from qclib.fitsio import scan_fits
from qclib.previews import image_hdus, previews_from_file, read_previews
from qclib.products import PART_PREFIX
from qclib.workflow.association import associate_workspace
from qclib.workflow.ingest import ingest_paths
from qclib.workflow.process import ProcessOutcome, process_blocks
from qclib.workspace import init_workspace
from tests.conftest import load_truth

pytestmark = pytest.mark.slow


def _process(root: Path, night: Path, tasks: int) -> tuple[dict[str, ProcessOutcome], dict]:
    workspace = init_workspace(root)
    database = workspace.open_database()
    ingest_paths(workspace, database, [night])
    associate_workspace(workspace, database)
    if tasks == 1:
        outcomes = process_blocks(workspace, database)
    else:
        with concurrent.futures.ProcessPoolExecutor(
            2, mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            outcomes = process_blocks(workspace, database, executor=pool, detector_tasks=tasks)
    with database.transaction() as session:
        products = {
            p.path: (p.sha256, product_store.qc_values(session, p.id), _kept_previews(root, p))
            for p in product_store.list_products(session)
        }
    database.close()
    assert not list(workspace.products_dir.rglob(f"{PART_PREFIX}*"))
    return {o.ab_id: o for o in outcomes}, products


@pytest.mark.parametrize("night_fixture", ["omegacam_night", "hawki_night"])
def test_parts_written_in_place_are_the_products_of_one_task(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch, night_fixture: str
) -> None:
    monkeypatch.delenv("QC_DB_URL", raising=False)
    night = request.getfixturevalue(night_fixture)
    one_outcomes, one = _process(tmp_path / "one", night, 1)
    # Three tasks: uneven runs of detectors (32 CCDs: 11 + 10 + 11; 4 chips: 1 + 2 + 1).
    three_outcomes, three = _process(tmp_path / "three", night, 3)
    assert {k: o.status for k, o in three_outcomes.items()} == {
        k: o.status for k, o in one_outcomes.items()
    }
    assert sum(o.status == "done" for o in one_outcomes.values()) >= 5
    assert three == one  # same files, SHA-256, QC values per detector and previews


def _kept_previews(root: Path, product: product_store.StoredProduct) -> list[tuple]:
    """The previews kept with a product image: those of its file, whichever task
    wrote which detector."""
    path = root / product.path
    images = image_hdus(scan_fits(path))
    kept = read_previews(path, product.sha256)
    if not images:
        assert kept in (None, [])
        return []
    assert kept is not None, f"{product.path}: no previews kept"
    made = previews_from_file(path, images)
    comparable = [
        (p.extname, p.unit, p.thumbnail.tobytes(), p.counts.tobytes(), repr((p.low, p.high)))
        for p in kept
    ]
    assert comparable == [
        (p.extname, p.unit, p.thumbnail.tobytes(), p.counts.tobytes(), repr((p.low, p.high)))
        for p in made
    ]
    return comparable


def _saturate_last_detector(path: Path) -> None:
    last = scan_fits(path).extensions[-1]
    n = int(last.header["NAXIS1"]) * int(last.header["NAXIS2"])
    with open(path, "r+b") as handle:
        handle.seek(last.data_offset)
        handle.write(np.full(n, 65535 - 32768, ">i2").tobytes())


def test_a_failing_part_fails_the_block_and_leaves_no_part(
    tmp_path: Path, omegacam_night: Path, monkeypatch
) -> None:
    monkeypatch.delenv("QC_DB_URL", raising=False)
    night = tmp_path / "night"
    shutil.copytree(omegacam_night, night)
    dome = next(e["arcfile"] for e in load_truth(night)["exposures"] if e["kind"] == "dome_flat")
    (night / dome).chmod(0o644)
    _saturate_last_detector(night / dome)  # the first task's detectors are fine
    outcomes, products = _process(tmp_path / "ws", night, 2)
    (failed,) = [o for k, o in outcomes.items() if k.endswith("_MASTER_DOME_FLAT")]
    assert failed.status == "failed"
    assert f"flat frame {dome} is saturated" in (failed.reason or "")
    assert not [p for p in products if "MASTER_DOME_FLAT" in p]
