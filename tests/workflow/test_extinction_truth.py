"""The night's extinction to 0.01 mag/airmass, from a night whose standard field is
visited six times (airmass 1.10-1.98) on the harder sky (catalogue errors, colour
terms, pointing errors, an elongated PSF with a halo).

Size: four test-size CCDs, 3-19 stars each per visit, zeropoints known to
0.005-0.015 mag. The catalogue's own errors are common to all visits (the same
stars), so they drop out of the slope. One k for the whole field, fitted with a
zeropoint per detector, is known to 0.007 mag/airmass here (its stated error); the
test asks for 0.01 and for a stated error below that. Fitted per detector, as
before, the same kind of zeropoints gave k = 0.064-0.101 (truth 0.09). Measured:
0.0906 +- 0.0067.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qclib.db import products as product_store
from qclib.errors import ConfigError
from qclib.simulate.night import simulate_night
from qclib.workflow.association import associate_workspace
from qclib.workflow.extinction import measure_extinction
from qclib.workflow.ingest import ingest_paths
from qclib.workflow.process import process_blocks
from qclib.workspace import init_workspace
from tests.conftest import NIGHT, load_truth
from tests.recipes.conftest import expected_zeropoint

VISITS = 6


def _simulate(out: Path, visits: int) -> None:
    simulate_night(
        "OMEGACAM",
        NIGHT,
        out,
        seed=7,
        scale="test",
        workers=1,
        progress=False,
        only={"bias", "dome_flat", "twilight_flat", "standard"},
        counts={"standard": visits},
    )


@pytest.fixture(scope="module")
def six_visits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("six-visits")
    _simulate(out, VISITS)
    return out


def test_extinction_of_a_night_with_six_visits(
    tmp_path: Path, six_visits: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QC_DB_URL", raising=False)
    truth = load_truth(six_visits)
    standards = [e for e in truth["exposures"] if e["kind"] == "standard"]
    airmasses = [e["airmass"] for e in standards]
    assert len(standards) == VISITS and max(airmasses) - min(airmasses) > 0.8
    workspace = init_workspace(tmp_path / "ws")
    database = workspace.open_database()
    ingest_paths(workspace, database, [six_visits])
    associate_workspace(workspace, database)
    process_blocks(workspace, database)
    (ab_id,) = measure_extinction(workspace, database)
    with database.transaction() as session:
        (product,) = [p for p in product_store.list_products(session) if p.ab_id == ab_id]
        values = product_store.qc_values(session, product.id)
    database.close()
    assert ab_id == f"OMEGACAM.{NIGHT.isoformat()}.r_SDSS_EXTINCTION"
    k_true = truth["filters"]["r_SDSS"]["extinction_mag_per_airmass"]
    assert set(values) == set(truth["detectors"])
    for extname, qc in values.items():
        assert qc["QC.NVISITS"] == VISITS
        assert qc["QC.EXTINCTION"] == pytest.approx(k_true, abs=0.01)
        assert qc["QC.EXTINCTION.ERR"] < 0.01
        # Each detector's zeropoint above the atmosphere: 0.03 mag, as a visit's.
        x0_true = expected_zeropoint(truth, extname, "r_SDSS", 0.0)
        assert qc["QC.ZPOINT.X0.FIT"] == pytest.approx(x0_true, abs=0.03), extname


def test_counts_replace_the_plans_numbers(six_visits: Path) -> None:
    truth = load_truth(six_visits)
    assert truth["counts"] == {"standard": VISITS}
    kinds = [e["kind"] for e in truth["exposures"]]
    assert kinds.count("standard") == VISITS and kinds.count("bias") == 5  # count_test


def test_other_counts_are_another_simulation(six_visits: Path) -> None:
    """The folder check knows the counts: another simulation there is refused."""
    with pytest.raises(ConfigError, match="already holds a different simulation"):
        _simulate(six_visits, VISITS + 1)
