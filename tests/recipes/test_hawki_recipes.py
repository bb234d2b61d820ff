"""HAWK-I calibration recipes at test size, end to end: what each recovers of the truth.
(Full-size checks, with ESO's pipeline alongside: tests/test_esorex_peer.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from qclib.calib.defects import remove_local_level, remove_row_column_pattern
from qclib.calib.dq import DQ_COLD, DQ_HOT
from qclib.calib.parameters import DarkConfig
from qclib.calib.stats import clipped_stats
from tests.recipes.conftest import ProcessedNight


def test_dark_blocks_one_master_per_dit(hawki_processed: ProcessedNight) -> None:
    darks = hawki_processed.of("MASTER_DARK")
    assert sorted(p.header["DET.DIT"] for p in darks) == [2.0, 10.0, 60.0, 150.0]
    truth = hawki_processed.truth
    area_cm2 = 248 * 248 * (18e-4) ** 2
    true_events, found_events = 0, 0.0
    for product in darks:
        dit = product.header["DET.DIT"]
        exposures = [e for e in truth["exposures"] if e["kind"] == "dark" and e["dit_s"] == dit]
        for extname, det in truth["detectors"].items():
            qc = hawki_processed.qc[product.id][extname]
            assert qc["QC.RON"] == pytest.approx(det["read_noise_adu"], rel=0.03)
            true_events += sum(e["detectors"][extname]["particle_events"] for e in exposures)
            seconds = sum(e["dit_s"] * e["ndit"] for e in exposures)
            found_events += qc["QC.PARTICLE_RATE"] * area_cm2 * seconds
            # Every hot pixel expected 3 sigma above the threshold is found; those
            # nearer it are found as often as noise lets them (recall by strength:
            # tests/calib/test_defect_recall.py). None is flagged falsely.
            noise = _master_noise_adu(hawki_processed, product, extname)
            threshold = DarkConfig().hot_sigma + 3
            clear = {
                (x, y)
                for x, y, rate in det["hot_pixels"]
                if rate * dit / det["gain_e_per_adu"] >= threshold * noise
            }
            found = hawki_processed.pixels(hawki_processed.dq(product, extname), DQ_HOT)
            assert clear <= found, (dit, extname, clear - found)
            hot = {(x, y) for x, y, _ in det["hot_pixels"]}
            assert found <= hot, (dit, extname, found - hot)
        if dit >= 60:  # 2-100 e-/s over 60 s: every hot pixel is clear of the noise
            assert all(
                {(x, y) for x, y, _ in det["hot_pixels"]}
                <= hawki_processed.pixels(hawki_processed.dq(product, e), DQ_HOT)
                for e, det in truth["detectors"].items()
            )

    # 20 particle events at test size (weak ones, divided among NDIT reads, can fall
    # below the 7-sigma cut): 90 % of them found, none invented.
    assert 0.9 * true_events <= found_events <= true_events + 1e-6, (true_events, found_events)


def _master_noise_adu(night: ProcessedNight, product, extname: str) -> float:  # type: ignore[no-untyped-def]
    """The master's pixel noise around its local level (what hot pixels stand out of)."""
    with fits.open(night.workspace.root / product.path) as hdul:
        image = np.asarray(hdul[extname].data, dtype=np.float32)
    return clipped_stats(remove_local_level(remove_row_column_pattern(image)), sigma=4).std


def test_detector_noise(hawki_processed: ProcessedNight) -> None:
    (product,) = hawki_processed.of("MASTER_READGAIN")
    for extname, det in hawki_processed.truth["detectors"].items():
        qc = hawki_processed.qc[product.id][extname]
        assert qc["QC.GAIN"] == pytest.approx(det["gain_e_per_adu"], rel=0.03)
        assert qc["QC.RON"] == pytest.approx(det["read_noise_adu"], rel=0.03)


def test_twilight_flat_and_confidence_map(hawki_processed: ProcessedNight) -> None:
    flats = hawki_processed.of("MASTER_TWILIGHT_FLAT")
    confs = hawki_processed.of("MASTER_CONF")
    assert {p.header["INS.FILT1.NAME"] for p in flats} == {"J", "Ks"}
    assert len(confs) == len(flats)
    for flat in flats:
        for extname, det in hawki_processed.truth["detectors"].items():
            cold = {(x, y) for x, y, _ in det["cold_pixels"]}
            dq = hawki_processed.dq(flat, extname)
            found = hawki_processed.pixels(dq, DQ_COLD)
            assert cold <= found and len(found - cold) <= 0.01 * len(found)
            qc = hawki_processed.qc[flat.id][extname]
            assert qc["QC.FLAT.PRNU"] == pytest.approx(det["prnu_rms"], rel=0.1)
            assert qc["QC.FLAT.NBADPIX"] >= len(found)
    for conf in confs:
        for extname, values in hawki_processed.qc[conf.id].items():
            flat = next(f for f in flats if f.ab_id == conf.ab_id)
            assert (
                values["QC.CONF.NZERO"] == hawki_processed.qc[flat.id][extname]["QC.FLAT.NBADPIX"]
            )
            assert values["QC.CONF.MED"] == pytest.approx(100, abs=1)
