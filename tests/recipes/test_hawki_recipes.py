"""HAWK-I calibration recipes at test size, end to end: what each recovers of the truth.
(Full-size checks, with ESO's pipeline alongside: tests/test_esorex_peer.py.)"""

from __future__ import annotations

import pytest

from qclib.calib.dq import DQ_COLD, DQ_HOT
from tests.recipes.conftest import ProcessedNight


def test_dark_blocks_one_master_per_dit(hawki_processed: ProcessedNight) -> None:
    darks = hawki_processed.of("MASTER_DARK")
    assert sorted(p.header["DET.DIT"] for p in darks) == [2.0, 10.0, 60.0, 150.0]
    truth = hawki_processed.truth
    for product in darks:
        dit = product.header["DET.DIT"]
        exposures = [e for e in truth["exposures"] if e["kind"] == "dark" and e["dit_s"] == dit]
        for extname, det in truth["detectors"].items():
            qc = hawki_processed.qc[product.id][extname]
            assert qc["QC.RON"] == pytest.approx(det["read_noise_adu"], rel=0.03)
            events = sum(e["detectors"][extname]["particle_events"] for e in exposures)
            area_cm2 = 248 * 248 * (18e-4) ** 2
            seconds = sum(e["dit_s"] * e["ndit"] for e in exposures)
            assert qc["QC.PARTICLE_RATE"] * area_cm2 * seconds == pytest.approx(events, abs=1)
            if dit >= 10:  # 2 e-/s hot pixels give 4 e- in 2 s: below any noise
                hot = {(x, y) for x, y, _ in det["hot_pixels"]}
                found = hawki_processed.pixels(hawki_processed.dq(product, extname), DQ_HOT)
                assert len(hot & found) >= 0.95 * len(hot)
                assert len(found - hot) <= 0.01 * max(len(found), 1)


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
