"""OmegaCAM calibration recipes end to end (ingest, associate, process) recover the
simulator's truth per detector."""

from __future__ import annotations

import numpy as np
import pytest

from qclib.calib.dq import DQ_COLD, DQ_HOT
from tests.recipes.conftest import ProcessedNight, expected_zeropoint


def test_every_calibration_block_is_done(omegacam_processed: ProcessedNight) -> None:
    calibrations = {ab: o for ab, o in omegacam_processed.outcomes.items() if "SCIENCE" not in ab}
    assert {o.status for o in calibrations.values()} == {"done"}, calibrations
    made = {p.pro_catg for p in omegacam_processed.products}
    assert made == {
        "MASTER_BIAS",
        "MASTER_DARK",
        "READ_GAIN",
        "MASTER_DOME_FLAT",
        "MASTER_SKY_FLAT",
        "MASTER_FLAT",
        "ZEROPOINT",
    }


def test_qc_values_are_all_in_the_catalogue(omegacam_processed: ProcessedNight) -> None:
    """Every QC parameter a recipe writes is defined (unit, meaning) in the TOML."""
    from qclib.instruments import load_instrument

    catalogue = load_instrument("OMEGACAM").qc
    for product in omegacam_processed.products:
        for values in omegacam_processed.qc[product.id].values():
            unknown = set(values) - set(catalogue[product.pro_catg])
            assert not unknown, (product.pro_catg, unknown)


def test_master_dark(omegacam_processed: ProcessedNight) -> None:
    (dark,) = omegacam_processed.of("MASTER_DARK")
    truth = omegacam_processed.truth
    exposures = [e for e in truth["exposures"] if e["kind"] == "dark"]
    for extname, det in truth["detectors"].items():
        qc = omegacam_processed.qc[dark.id][extname]
        assert qc["QC.RON"] == pytest.approx(det["read_noise_adu"], rel=0.03)
        # Particle events per cm2 and second of exposure + readout.
        events = sum(e["detectors"][extname]["particle_events"] for e in exposures)
        area_cm2 = 256 * 512 * (15e-4) ** 2
        seconds = sum(e["exptime_s"] + 30.0 for e in exposures)
        assert qc["QC.PARTICLE_RATE"] == pytest.approx(events / area_cm2 / seconds, rel=0.15)
        hot = {(x, y) for x, y, _ in det["hot_pixels"]}
        found = omegacam_processed.pixels(omegacam_processed.dq(dark, extname), DQ_HOT)
        assert len(hot & found) >= 0.95 * len(hot)
        assert len(found - hot) <= 0.01 * len(found)
        assert qc["QC.DARK.P99"] > qc["QC.DARK.MED"]  # a catalogue (TOML-only) parameter


def test_read_gain(omegacam_processed: ProcessedNight) -> None:
    """Gain and read noise within 3 % on every CCD, also where the data region's bias
    sits a few ADU above the overscan (no dark signal in a bias: the read noise read up to
    20 % low when that offset was taken for one)."""
    (gain,) = omegacam_processed.of("READ_GAIN")
    detectors = omegacam_processed.truth["detectors"]
    assert max(det["bias_offset_adu"] for det in detectors.values()) > 2.0
    for extname, det in detectors.items():
        qc = omegacam_processed.qc[gain.id][extname]
        assert qc["QC.GAIN"] == pytest.approx(det["gain_e_per_adu"], rel=0.03)
        assert qc["QC.RON.ELECTRONS"] == pytest.approx(det["read_noise_e"], rel=0.03)


def test_flats_find_cold_pixels_and_response(omegacam_processed: ProcessedNight) -> None:
    (dome,) = omegacam_processed.of("MASTER_DOME_FLAT")
    (master,) = omegacam_processed.of("MASTER_FLAT")
    (bias,) = omegacam_processed.of("MASTER_BIAS")
    detectors = omegacam_processed.truth["detectors"]
    assert any(det["bad_columns"] for det in detectors.values())
    for extname, det in detectors.items():
        # Cold pixels and bad columns (x, first row, row after the last, response).
        cold = {(x, y) for x, y, _ in det["cold_pixels"]} | {
            (x, y) for x, start, stop, _ in det["bad_columns"] for y in range(start, stop)
        }
        found = omegacam_processed.pixels(omegacam_processed.dq(dome, extname), DQ_COLD)
        assert len(cold & found) >= 0.95 * len(cold)
        assert len(found - cold) <= 0.01 * len(found)
        qc = omegacam_processed.qc[dome.id][extname]
        assert qc["QC.FLAT.PRNU"] == pytest.approx(det["prnu_rms"], rel=0.1)
        assert qc["QC.FLAT.RATIO"] == pytest.approx(1.0, abs=0.01)  # a steady lamp
        # The master flat's bad pixels: the bias's hot ones and the dome's cold ones.
        bad = omegacam_processed.dq(master, extname)
        hot = omegacam_processed.pixels(omegacam_processed.dq(bias, extname), DQ_HOT)
        assert omegacam_processed.pixels(bad, DQ_HOT) == hot
        assert omegacam_processed.pixels(bad, DQ_COLD) == found
        assert omegacam_processed.qc[master.id][extname]["QC.FLAT.NBADPIX"] == len(hot | found)


def test_zeropoint_and_image_quality(omegacam_processed: ProcessedNight) -> None:
    """On the harder sky (catalogue errors and colour terms, a 1.8-4.8 arcsec pointing
    error, an elongated PSF with a halo): 0.03 mag on every detector visit with five
    stars or more.

    A test-size CCD holds 3-19 measured stars, each known to 0.015 mag (the
    catalogue) and 0.005-0.05 mag (photon noise): the zeropoint to 0.005-0.015. With
    3-4 stars (two of these eight visits) 0.03 mag is 2-3 of its errors: there the
    test asks for 3 errors, the statement the value makes. Few bright stars allow a
    curve of growth: the fitted profile's aperture correction then misses the halo's
    light outside 4 FWHM (0.009 mag too faint). Measured (seed 7): -0.019 ... +0.031,
    median -0.005. The curve of growth itself is tested where it has stars
    (tests/calib/test_photometry_truth.py).
    """
    truth = omegacam_processed.truth
    standards = {e["arcfile"]: e for e in truth["exposures"] if e["kind"] == "standard"}
    products = omegacam_processed.of("ZEROPOINT")
    assert len(products) == len(standards)
    deltas = []
    for product in products:
        exposure = standards[product.ab_id.removesuffix("_ZEROPOINT") + ".fits"]
        for extname, qc in omegacam_processed.qc[product.id].items():
            expected = expected_zeropoint(truth, extname, "r_SDSS", exposure["airmass"])
            delta = qc["QC.ZPOINT"] - expected
            deltas.append(delta)
            assert abs(delta) <= 3 * qc["QC.ZPOINT.ERR"], (extname, delta)
            if qc["QC.NSTARS"] >= 5:
                assert abs(delta) <= 0.03, (extname, delta)
            # Above the atmosphere with the nominal extinction (the simulator's here).
            k = truth["filters"]["r_SDSS"]["extinction_mag_per_airmass"]
            assert qc["QC.ZPOINT.X0"] - (expected + k * qc["QC.AIRMASS"]) == pytest.approx(
                delta, abs=1e-9
            )
            assert qc["QC.FWHM"] == pytest.approx(exposure["seeing_arcsec"], rel=0.03)
            # The WCS was off by the pointing error; the stars were found anyway.
            pointing = float(np.hypot(*exposure["pointing_error_arcsec"]))
            assert qc["QC.WCS.SHIFT"] == pytest.approx(pointing, abs=0.1)
            # 1 - b/a varies over a test CCD by up to +-0.045 (0.07-0.20 on these
            # four); a median of 3-10 stars: within 0.03 of the CCD centre's.
            e_true = truth["psf"]["detectors"][extname]["ellipticity_at_centre"]
            assert qc["QC.ELLIPTICITY"] == pytest.approx(e_true, abs=0.03), extname
    assert len(deltas) == 2 * len(truth["detectors"])  # every detector of every visit
    assert (
        sum(qc["QC.NSTARS"] >= 5 for p in products for qc in omegacam_processed.qc[p.id].values())
        >= 5
    )
    assert abs(float(np.median(deltas))) < 0.012
