"""The simulator's truth is physically right: measuring its frames recovers what it recorded.

These are checks of the simulator with textbook estimators and the recorded truth
(frame offsets included), not of qclib's pipeline recipes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import mad_std, sigma_clipped_stats

from qclib.calib.readout import channel_columns
from qclib.config.instrument import Geometry, parse_section
from qclib.instruments import load_instrument
from qclib.simulate.night import simulate_night
from qclib.simulate.sky import StellarPsf, detector_wcs, field_origin, illumination
from qclib.simulate.workers import simulator_pool
from tests.conftest import NIGHT, load_truth


def _robust_std(values: np.ndarray) -> float:
    """Clipped standard deviation: unlike the MAD, unbiased on integer-quantised data."""
    return float(sigma_clipped_stats(values, sigma=5, maxiters=10)[2])


def _frames(folder: Path, kind: str, **match) -> list[tuple[dict, Path]]:
    truth = load_truth(folder)
    out = []
    for e in truth["exposures"]:
        if e["kind"] == kind and all(e[k] == v for k, v in match.items()):
            out.append((e, folder / e["arcfile"]))
    return out


def _data(path: Path, extname: str, section: str) -> np.ndarray:
    rows, cols = parse_section(section)
    return fits.getdata(path, extname=extname).astype(np.float64)[rows, cols]


def test_omegacam_read_noise_from_bias_pairs(omegacam_night: Path) -> None:
    truth = load_truth(omegacam_night)
    section = truth["geometry"]["data_section"]
    (_, a), (_, b) = _frames(omegacam_night, "bias")[:2]
    for extname, det in truth["detectors"].items():
        diff = _data(a, extname, section) - _data(b, extname, section)
        measured = _robust_std(diff) / np.sqrt(2)
        # Integer rounding adds 1/12 ADU^2 of variance per frame.
        expected = np.sqrt(det["read_noise_adu"] ** 2 + 1 / 12)
        assert measured == pytest.approx(expected, rel=0.03), extname


def test_omegacam_bias_level_and_frame_offsets(omegacam_night: Path) -> None:
    truth = load_truth(omegacam_night)
    section = truth["geometry"]["data_section"]
    overscan = truth["geometry"]["overscan_section"]
    for exposure, path in _frames(omegacam_night, "bias"):
        for extname, det in truth["detectors"].items():
            offset = exposure["detectors"][extname]["frame_offset_adu"]
            data = _data(path, extname, section)
            mean, _, _ = sigma_clipped_stats(data, sigma=4)
            # The data region sits bias_offset_adu above the overscan, plus the edge
            # ramp's mean where the CCD has one.
            ramp = det["bias_edge_ramp_adu"] and det["bias_edge_ramp_adu"] * np.mean(
                np.exp(-np.arange(data.shape[1]) / det["bias_edge_ramp_px"])
            )
            expected = det["bias_level_adu"] + offset + det["bias_offset_adu"] + ramp
            assert mean == pytest.approx(expected, abs=0.1)
            over = _data(path, extname, overscan).mean()
            assert over == pytest.approx(det["bias_level_adu"] + offset, abs=0.15)


def test_omegacam_dark_current(omegacam_night: Path) -> None:
    truth = load_truth(omegacam_night)
    section = truth["geometry"]["data_section"]

    def stack(kind: str) -> dict[str, np.ndarray]:
        frames = _frames(omegacam_night, kind)
        return {
            ext: np.mean(
                [
                    _data(p, ext, section) - e["detectors"][ext]["frame_offset_adu"]
                    for e, p in frames
                ],
                axis=0,
            )
            for ext in truth["detectors"]
        }

    darks, biases = stack("dark"), stack("bias")
    exptime = _frames(omegacam_night, "dark")[0][0]["exptime_s"]
    for ext, det in truth["detectors"].items():
        mean, _, std = sigma_clipped_stats(darks[ext] - biases[ext], sigma=4)
        rate = mean * det["gain_e_per_adu"] / exptime
        # At the test scale the signal is ~0.2 ADU: allow 4 standard errors of the mean.
        error = 4 * std / np.sqrt(darks[ext].size) * det["gain_e_per_adu"] / exptime
        assert abs(rate - det["dark_current_e_per_s"]) < error + 0.01 * rate, ext
        # Hot pixels: their excess is their rate, and all of them stand out.
        excess = darks[ext] - biases[ext]
        hot = np.array(det["hot_pixels"])
        measured = (
            excess[hot[:, 1].astype(int), hot[:, 0].astype(int)] * det["gain_e_per_adu"] / exptime
        )
        np.testing.assert_allclose(
            measured, hot[:, 2] + det["dark_current_e_per_s"], rtol=0.1, atol=0.05
        )


def test_omegacam_gain_from_flat_pair(omegacam_night: Path) -> None:
    truth = load_truth(omegacam_night)
    section = truth["geometry"]["data_section"]
    (e1, f1), (e2, f2) = _frames(omegacam_night, "dome_flat")[:2]
    biases = _frames(omegacam_night, "bias")
    for ext, det in truth["detectors"].items():
        bias = np.mean(
            [_data(p, ext, section) - e["detectors"][ext]["frame_offset_adu"] for e, p in biases],
            axis=0,
        )
        a = _data(f1, ext, section) - e1["detectors"][ext]["frame_offset_adu"] - bias
        b = _data(f2, ext, section) - e2["detectors"][ext]["frame_offset_adu"] - bias
        signal = 0.5 * (np.median(a) + np.median(b))
        variance = _robust_std(a - b) ** 2 / 2 - det["read_noise_adu"] ** 2
        assert signal / variance == pytest.approx(det["gain_e_per_adu"], rel=0.03), ext


def test_omegacam_cold_pixels_and_flat_pattern(omegacam_night: Path) -> None:
    truth = load_truth(omegacam_night)
    instrument = load_instrument("OMEGACAM")
    geometry = instrument.geometry["test"]
    section = truth["geometry"]["data_section"]
    flats = _frames(omegacam_night, "dome_flat")
    for ext, det in truth["detectors"].items():
        stack = np.mean(
            [
                _data(p, ext, section)
                - det["bias_level_adu"]
                - e["detectors"][ext]["frame_offset_adu"]
                for e, p in flats
            ],
            axis=0,
        )
        light = illumination(instrument, geometry, ext, kind="dome_flat")
        response = stack / (light * np.median(stack / light))
        cold = np.array(det["cold_pixels"])
        got = response[cold[:, 1].astype(int), cold[:, 0].astype(int)]
        np.testing.assert_allclose(got, cold[:, 2], atol=0.05)
        good = np.ones(response.shape, bool)
        good[cold[:, 1].astype(int), cold[:, 0].astype(int)] = False
        prnu = mad_std(response[good])
        # Pixel response rms plus photon and read noise of the 4-frame stack.
        assert prnu == pytest.approx(det["prnu_rms"], abs=0.004)


def test_standard_star_fluxes_match_zeropoint(omegacam_night: Path) -> None:
    """Aperture sums of bright isolated stars, where the true pointing puts them, give
    back their true instrumental magnitudes (truth-catalogues/: colour term applied,
    no catalogue error) through the PSF's light inside the aperture (core + halo,
    summed from the model at each star's ellipticity)."""
    truth = load_truth(omegacam_night)
    instrument = load_instrument("OMEGACAM")
    geometry = instrument.geometry["test"]
    rows, cols = parse_section(geometry.data_section)
    exposure, path = min(_frames(omegacam_night, "standard"), key=lambda f: f[0]["seeing_arcsec"])
    filt = exposure["filter"]
    zp = truth["filters"][filt]["zeropoint_mag"]
    k = truth["filters"][filt]["extinction_mag_per_airmass"]
    catalogue = np.genfromtxt(
        omegacam_night / truth["true_catalogues"][exposure["target"]], delimiter=",", names=True
    )
    listed = np.genfromtxt(
        omegacam_night / truth["catalogues"][exposure["target"]], delimiter=",", names=True
    )
    # The reference catalogue differs from the truth by its stated random error.
    errors = listed[f"mag_{filt}"] - catalogue[f"mag_{filt}"]
    assert np.std(errors) == pytest.approx(truth["filters"][filt]["catalogue_error_mag"], rel=0.1)
    mags = catalogue[f"inst_{filt}"]
    fwhm_px = exposure["seeing_arcsec"] / instrument.pixel_scale_arcsec
    psf = StellarPsf.of_profile(instrument.simulator, fwhm_px)
    radius = int(np.ceil(4 * fwhm_px))
    ratios = []
    with fits.open(path) as hdul:
        for ext, det in truth["detectors"].items():
            wcs = detector_wcs(instrument, geometry, ext, exposure["ra_deg"], exposure["dec_deg"])
            image = hdul[ext].data.astype(np.float64)
            hot = np.zeros(image[rows, cols].shape, bool)
            for hx, hy, _rate in det["hot_pixels"]:
                hot[hy, hx] = True
            px, py = wcs.all_world2pix(catalogue["ra_deg"], catalogue["dec_deg"], 0)
            light = illumination(instrument, geometry, ext, kind="sky")
            x0, y0, xc, yc = field_origin(instrument, geometry, ext)
            for i in np.flatnonzero(mags < 18.5):
                x, y = px[i] - cols.start, py[i] - rows.start
                if not (
                    radius + 16 < x < light.shape[1] - radius - 16
                    and radius + 16 < y < light.shape[0] - radius - 16
                ):
                    continue
                others = np.hypot(px - px[i], py - py[i])
                bright = mags < mags[i] + 6
                if np.sort(others[bright])[1] < 3 * radius or catalogue["is_galaxy"][i]:
                    continue
                ix, iy = round(x), round(y)
                pad = radius + 15
                box = image[rows][iy - pad : iy + pad + 1, cols][:, ix - pad : ix + pad + 1]
                yy, xx = np.mgrid[: box.shape[0], : box.shape[1]]
                r = np.hypot(xx - (x - ix + pad), yy - (y - iy + pad))
                if hot[iy - pad : iy + pad + 1, ix - pad : ix + pad + 1].any():
                    continue
                # The model's light inside the aperture, on the same pixel grid.
                e, angle = psf.shape_at((x0 + x - xc) / xc, (y0 + y - yc) / yc)
                half = psf.radius_px
                gy, gx = np.mgrid[-half : half + 1, -half : half + 1]
                dx, dy = gx + ix - x, gy + iy - y
                model = psf.stamp(dx, dy, float(e), float(angle))
                enclosed = model[np.hypot(dx, dy) <= radius].sum()
                # A clipped mean: the median of integer data is biased by the quantisation.
                sky = sigma_clipped_stats(box[r > radius + 1], sigma=3)[0]
                in_box = (np.abs(dx) <= pad) & (np.abs(dy) <= pad)
                outside = model[(np.hypot(dx, dy) > radius + 1) & in_box]
                flux_adu = (box[r <= radius] - sky).sum()
                expected_e = 10 ** (0.4 * (zp - k * exposure["airmass"] - mags[i]))
                scale = expected_e * exposure["exptime_s"] * light[iy, ix] / det["gain_e_per_adu"]
                # The halo's light around the aperture raises the clipped sky a little.
                expected = scale * (enclosed - outside.mean() * (r <= radius).sum())
                ratios.append(flux_adu / expected)
    # A particle hit can land in an aperture (its position is not recorded): judge the bulk.
    ratios = np.array(ratios)
    assert len(ratios) >= 5
    assert np.median(ratios) == pytest.approx(1.0, abs=0.01)
    assert np.mean(np.abs(ratios - 1) < 0.03) >= 0.8, ratios


def test_hawki_read_noise_and_ndit_averaging(hawki_night: Path) -> None:
    truth = load_truth(hawki_night)
    section = truth["geometry"]["data_section"]
    for dit, ndit in ((60.0, 1), (10.0, 6)):
        (e1, a), (_, b) = _frames(hawki_night, "dark", dit_s=dit)[:2]
        assert e1["ndit"] == ndit
        for ext, det in truth["detectors"].items():
            diff = _data(a, ext, section) - _data(b, ext, section)
            # Each frame's readout channels (even, odd columns) have their own offsets.
            geometry = Geometry(**truth["geometry"])
            for group in channel_columns(geometry, parse_section(section)[1]) or []:
                diff[:, group] -= np.median(diff[:, group])
            measured = _robust_std(diff) / np.sqrt(2)
            dark_e = det["dark_current_e_per_s"] * dit
            expected = np.sqrt(
                (det["read_noise_e"] ** 2 + dark_e) / ndit / det["gain_e_per_adu"] ** 2
                + det["correlated_noise_rms_adu"] ** 2 / ndit
            )
            assert measured == pytest.approx(expected, rel=0.03), (ext, dit)


def test_hawki_twilight_flats_fall_and_pairs_are_equal(hawki_night: Path) -> None:
    levels = [e["flux_e_per_s"] for e, _ in _frames(hawki_night, "twilight_flat", filter="Ks")]
    assert all(a > b for a, b in itertools.pairwise(levels))
    pairs = [e["flux_e_per_s"] for e, _ in _frames(hawki_night, "twilight_flat", filter="J")]
    assert pairs[0] == pairs[1] and pairs[2] == pairs[3]


def test_particle_hits_are_recorded(omegacam_night: Path) -> None:
    truth = load_truth(omegacam_night)
    darks = [e for e in truth["exposures"] if e["kind"] == "dark"]
    events = sum(d["particle_events"] for e in darks for d in e["detectors"].values())
    ny, nx = parse_section(truth["geometry"]["data_section"])
    area_cm2 = (ny.stop - ny.start) * (nx.stop - nx.start) * (15e-4) ** 2
    expected = 0.02 * area_cm2 * (900 + 30) * len(darks) * len(truth["detectors"])
    assert events == pytest.approx(expected, rel=0.5)


def _sha(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.fits"))
    }


def test_same_seed_same_bytes_whatever_the_workers_or_pool(tmp_path: Path) -> None:
    a = simulate_night(
        "HAWKI", NIGHT, tmp_path / "a", seed=3, scale="test", workers=1, progress=False
    )
    b = simulate_night(
        "HAWKI", NIGHT, tmp_path / "b", seed=3, scale="test", workers=2, progress=False
    )
    c = simulate_night(
        "HAWKI", NIGHT, tmp_path / "c", seed=4, scale="test", workers=1, progress=False
    )
    # One pool shared by two simulations (as the demo shares one among its nights).
    with simulator_pool(2) as pool:
        shared = [
            simulate_night(
                "HAWKI",
                NIGHT,
                tmp_path / f"shared{s}",
                seed=s,
                scale="test",
                progress=False,
                pool=pool,
            )
            for s in (3, 4)
        ]
    assert _sha(a.out_dir) == _sha(b.out_dir) == _sha(shared[0].out_dir)
    assert _sha(c.out_dir) == _sha(shared[1].out_dir)
    assert json.loads(a.truth_path.read_text()) == json.loads(b.truth_path.read_text())
    differing = [n for n, h in _sha(a.out_dir).items() if _sha(c.out_dir).get(n) != h]
    assert differing


def test_files_open_cleanly_in_astropy(hawki_night: Path, omegacam_night: Path) -> None:
    for folder in (hawki_night, omegacam_night):
        for path in sorted(folder.glob("*.fits"))[:3]:
            with fits.open(path, checksum=False) as hdul:
                hdul.verify("exception")


def test_only_some_kinds_gives_the_same_frames(tmp_path: Path, hawki_night: Path) -> None:
    """`--only dark` writes exactly the darks of the full night, byte for byte."""
    result = simulate_night(
        "HAWKI",
        NIGHT,
        tmp_path / "darks",
        seed=7,
        scale="test",
        workers=1,
        progress=False,
        only={"dark"},
    )
    full = load_truth(hawki_night)
    darks = {e["arcfile"] for e in full["exposures"] if e["kind"] == "dark"}
    assert {p.name for p in result.files} == darks
    for path in result.files:
        assert _sha_file(path) == _sha_file(hawki_night / path.name)
    mine = json.loads(result.truth_path.read_text())
    theirs = {e["arcfile"]: e for e in full["exposures"]}
    for exposure in mine["exposures"]:
        assert exposure == theirs[exposure["arcfile"]]


def _sha_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
