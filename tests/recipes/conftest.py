"""Processed test-scale nights (SQLite): every calibration block of a night run through
its recipe once per test session, for the truth-recovery tests to read."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from qclib.db import products as product_store
from qclib.instruments import load_instrument
from qclib.simulate.night import simulate_night
from qclib.simulate.sky import illumination
from qclib.workflow.association import associate_workspace
from qclib.workflow.ingest import ingest_paths
from qclib.workflow.process import ProcessOutcome, process_blocks
from qclib.workspace import Workspace, init_workspace
from tests.conftest import NIGHT, load_truth, scratch


@dataclass
class ProcessedNight:
    night: Path
    workspace: Workspace
    truth: dict
    outcomes: dict[str, ProcessOutcome]
    products: list[product_store.StoredProduct]
    qc: dict[int, dict[str, dict[str, float | None]]]

    def of(self, pro_catg: str) -> list[product_store.StoredProduct]:
        return [p for p in self.products if p.pro_catg == pro_catg]

    def dq(self, product: product_store.StoredProduct, extname: str) -> np.ndarray:
        with fits.open(self.workspace.root / product.path) as hdul:
            return np.asarray(hdul[f"{extname}.DQ"].data)

    def pixels(self, dq: np.ndarray, bit: int) -> set[tuple[int, int]]:
        ys, xs = np.nonzero(dq & bit)
        return {(int(x), int(y)) for x, y in zip(xs, ys, strict=True)}


def _process(tmp: Path, night: Path, monkeypatch: pytest.MonkeyPatch) -> ProcessedNight:
    monkeypatch.delenv("QC_DB_URL", raising=False)
    workspace = init_workspace(tmp / "ws")
    database = workspace.open_database()
    ingest_paths(workspace, database, [night])
    associate_workspace(workspace, database)
    outcomes = {o.ab_id: o for o in process_blocks(workspace, database)}
    with database.transaction() as session:
        products = product_store.list_products(session)
        qc = {p.id: product_store.qc_values(session, p.id) for p in products}
    database.close()
    return ProcessedNight(night, workspace, load_truth(night), outcomes, products, qc)


@pytest.fixture(scope="session")
def omegacam_processed(tmp_path_factory, omegacam_night: Path) -> ProcessedNight:
    with pytest.MonkeyPatch.context() as mp:
        return _process(tmp_path_factory.mktemp("omegacam-processed"), omegacam_night, mp)


#: Two full-size OmegaCAM CCDs (fixture ``omegacam_full_ccds``).
FULL_SIZE_CCDS = ["ESO_CCD_#65", "ESO_CCD_#90"]


@pytest.fixture(scope="package")
def omegacam_full_ccds(request: pytest.FixtureRequest) -> Iterator[ProcessedNight]:
    """Two full CCDs of a full-size OmegaCAM night, only what the ZEROPOINT and science
    blocks need (biases, dome flats, twilight flats, standards, the science OB),
    through ingest, associate and process (the science block waits, on request)."""
    with (
        scratch(request, "omegacam-full-ccds") as night,
        scratch(request, "omegacam-full-processed") as tmp,
    ):
        simulate_night(
            "OMEGACAM",
            NIGHT,
            night,
            seed=3,
            scale="full",
            progress=False,
            only={"bias", "dome_flat", "twilight_flat", "standard", "science"},
            detectors=FULL_SIZE_CCDS,
        )
        # The instrument as loaded now (another test may have reloaded the cached one).
        omegacam = load_instrument("OMEGACAM")
        with pytest.MonkeyPatch.context() as mp:
            # Ingest quarantines a full-size file without all 32 CCDs (an incomplete
            # readout): for this night the full scale holds the two simulated ones. Only
            # that check reads the list; the recipes take the detectors the raws hold.
            mp.setitem(
                omegacam.geometry,
                "full",
                omegacam.geometry["full"].model_copy(update={"detectors": FULL_SIZE_CCDS}),
            )
            processed = _process(tmp, night, mp)
        yield processed


@pytest.fixture(scope="session")
def hawki_processed(tmp_path_factory, hawki_night: Path) -> ProcessedNight:
    with pytest.MonkeyPatch.context() as mp:
        return _process(tmp_path_factory.mktemp("hawki-processed"), hawki_night, mp)


def expected_zeropoint(truth: dict, extname: str, filt: str, airmass: float) -> float:
    """The zeropoint (1 ADU/s at this airmass) a flat-fielded detector must show: the
    simulator's (1 e-/s above the atmosphere, response 1) less extinction and gain,
    plus the sky illumination the per-detector flat normalisation leaves in."""
    instrument = load_instrument(truth["instrument"])
    geometry = instrument.geometry[truth["scale"]]
    profile = truth["filters"][filt]
    det = truth["detectors"][extname]
    light = illumination(instrument, geometry, extname, kind="sky")
    return (
        profile["zeropoint_mag"]
        - profile["extinction_mag_per_airmass"] * airmass
        - 2.5 * np.log10(det["gain_e_per_adu"])
        + 2.5 * np.log10(float(np.median(light)))
    )


@dataclass
class ProcessedScience:
    """A processed night's science block, run once its masters were certified."""

    processed: ProcessedNight
    ab_id: str
    outcome: ProcessOutcome
    product: product_store.StoredProduct  # SCIENCE_COADD
    weight: product_store.StoredProduct  # SCIENCE_COADD_WEIGHT
    qc: dict[str, dict[str, float | None]]
    grade: Any

    def hdul(self, product: product_store.StoredProduct | None = None) -> fits.HDUList:
        return fits.open(self.processed.workspace.root / (product or self.product).path)


def process_science(processed: ProcessedNight) -> ProcessedScience:
    """Score and certify every product of a processed night (as a QC scientist would,
    through ``decide``), then run its science block and grade it."""
    from qclib.archive.certification import decide
    from qclib.db import ob_grades
    from qclib.workflow.grading import grade_science
    from qclib.workflow.scoring import score_values

    workspace = processed.workspace
    database = workspace.open_database()
    (ab_id,) = [ab for ab in processed.outcomes if ab.endswith("SCIENCE_REDUCED")]
    score_values(database)
    with database.transaction() as session:
        ids = [p.id for p in product_store.list_products(session)]
    decide(workspace, database, ids, decision="certify", comment="test", reviewer="tester")
    (outcome,) = process_blocks(workspace, database, ids=[ab_id])
    grade_science(database, [ab_id])
    with database.transaction() as session:
        made = {p.pro_catg: p for p in product_store.products_of_block(session, ab_id)}
        assert sorted(made) == ["SCIENCE_COADD", "SCIENCE_COADD_WEIGHT"], (made, outcome)
        qc = product_store.qc_values(session, made["SCIENCE_COADD"].id)
        grade = ob_grades.grade_of(session, ab_id)
    database.close()
    return ProcessedScience(
        processed, ab_id, outcome, made["SCIENCE_COADD"], made["SCIENCE_COADD_WEIGHT"], qc, grade
    )
