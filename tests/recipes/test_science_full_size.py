"""An OmegaCAM science OB, reduced with certified masters and coadded, against the
simulator's truth: two full-size CCDs (2048 x 4100 pixels, 7.3 x 14.6 arcmin each, a
few hundred stars of the KiDS field) in five dithered 360 s exposures.

Sizes and tolerances (the issue's): magnitudes within 0.05 mag rms of the truth for the
stars measured to better than 2 % (MAG_ERR < 0.02), unflagged, with no other source
within 6 arcsec (a blend is two stars in one aperture); astrometric rms under 0.1
arcsec for the same stars; each exposure's FWHM within 5 % of its simulated seeing.
Measured (seed 3): 114 such stars, rms 0.013 mag (median +0.003), astrometric rms 0.012
arcsec, the five exposures' FWHM within 0.6 % of the seeing, each CCD's PSF major axis
within 0.5 degree and its 1 - b/a within 0.01 of the truth at its centre; 98.0 % of the
148 stars 1-2 mag brighter than QC.MAGLIM found. About 50 s on 2 cores, on top of the
night's calibrations (fixture shared with test_zeropoint_full_size.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits

from qclib.calib.coadd_quality import FLAG_NEAR_BAD
from tests.recipes.conftest import FULL_SIZE_CCDS, ProcessedNight, ProcessedScience, process_science

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def science(omegacam_full_ccds: ProcessedNight) -> ProcessedScience:
    return process_science(omegacam_full_ccds)


def _truth_catalogue(science: ProcessedScience) -> pd.DataFrame:
    truth = science.processed.truth
    name = truth["true_catalogues"]["KIDS_15.0_-31.2"]
    return pd.read_csv(science.processed.night / name)


def test_coadd_magnitudes_and_positions_match_the_truth(science: ProcessedScience) -> None:
    assert science.outcome.status == "done", science.outcome
    with science.hdul() as hdul:
        sources = hdul["SOURCES"].data
        photzp = hdul["COADD"].header["HIERARCH ESO QC PHOTZP"]
    truth = _truth_catalogue(science)
    listed = SkyCoord(truth["ra_deg"].to_numpy(), truth["dec_deg"].to_numpy(), unit="deg")
    found = SkyCoord(sources["RA"], sources["DEC"], unit="deg")
    nearest, separation, _ = found.match_to_catalog_sky(listed)
    _, neighbour, _ = listed.match_to_catalog_sky(listed, nthneighbor=2)
    star = truth["is_galaxy"].to_numpy()[nearest] == 0
    chosen = (
        (separation.arcsec < 0.5)
        & star
        & (sources["MAG_ERR"] < 0.02)
        & ((sources["FLAGS"].astype(int) & FLAG_NEAR_BAD) == 0)
        & (neighbour.arcsec[nearest] > 6.0)
    )
    delta = sources["MAG"][chosen] - truth["inst_r_SDSS"].to_numpy()[nearest][chosen]
    rms = float(np.sqrt(np.mean(delta**2)))
    astrometric = float(np.sqrt(np.mean(separation.arcsec[chosen] ** 2)))
    print(
        f"{chosen.sum()} stars: magnitude rms {rms:.4f}, median {np.median(delta):+.4f}; "
        f"astrometric rms {astrometric:.4f} arcsec; PHOTZP {photzp}"
    )
    assert chosen.sum() >= 50
    assert rms <= 0.05
    assert astrometric < 0.1


def test_each_exposure_fwhm_within_five_percent_of_its_seeing(science: ProcessedScience) -> None:
    exposures = [e for e in science.processed.truth["exposures"] if e["kind"] == "science"]
    coadd = science.qc["COADD"]
    measured = [coadd[f"QC.FWHM.EXP{i}"] for i in range(1, len(exposures) + 1)]
    for exposure, fwhm in zip(sorted(exposures, key=lambda e: e["arcfile"]), measured, strict=True):
        print(f"{exposure['arcfile']}: FWHM {fwhm:.3f} vs seeing {exposure['seeing_arcsec']:.3f}")
    for exposure, fwhm in zip(sorted(exposures, key=lambda e: e["arcfile"]), measured, strict=True):
        assert fwhm == pytest.approx(exposure["seeing_arcsec"], rel=0.05)


def test_psf_shape_per_detector_follows_the_truth(science: ProcessedScience) -> None:
    truth = science.processed.truth["psf"]["detectors"]
    for extname in FULL_SIZE_CCDS:
        qc = science.qc[extname]
        angle = (qc["QC.PSF.ANGLE"] - truth[extname]["major_axis_deg"] + 90) % 180 - 90
        print(
            f"{extname}: angle {qc['QC.PSF.ANGLE']:.1f} vs {truth[extname]['major_axis_deg']:.1f}, "
            f"1-b/a {qc['QC.ELLIPTICITY']:.3f} vs {truth[extname]['ellipticity_at_centre']:.3f}"
        )
        assert abs(angle) <= 5.0
        assert qc["QC.ELLIPTICITY"] == pytest.approx(
            truth[extname]["ellipticity_at_centre"], abs=0.03
        )


def test_limiting_magnitude_lies_beyond_the_stars_it_finds_all_of(
    science: ProcessedScience,
) -> None:
    """Every star 1-2 mag brighter than the 5-sigma limit is detected (the field's
    catalogue stops at about 23.4, so completeness fainter cannot be checked)."""
    from astropy.wcs import WCS
    from scipy import ndimage

    with science.hdul() as hdul:
        sources = hdul["SOURCES"].data
        wcs = WCS(hdul["COADD"].header)
        uncovered = hdul["COADD.DQ"].data != 0
    limit = science.qc["COADD"]["QC.MAGLIM"]
    truth = _truth_catalogue(science)
    found = SkyCoord(sources["RA"], sources["DEC"], unit="deg")
    listed = SkyCoord(truth["ra_deg"].to_numpy(), truth["dec_deg"].to_numpy(), unit="deg")
    # Stars on covered sky, 10 pixels or more from any uncovered pixel.
    near_uncovered = ndimage.maximum_filter(uncovered.astype(np.uint8), size=21) > 0
    x, y = wcs.world_to_pixel(listed)
    ny, nx = uncovered.shape
    inside = (x >= 0) & (x < nx - 1) & (y >= 0) & (y < ny - 1)
    ix = np.clip(np.round(x).astype(int), 0, nx - 1)
    iy = np.clip(np.round(y).astype(int), 0, ny - 1)
    on_coadd = inside & ~near_uncovered[iy, ix]
    _, separation, _ = listed.match_to_catalog_sky(found)
    mags = truth["inst_r_SDSS"].to_numpy()
    stars = (truth["is_galaxy"].to_numpy() == 0) & on_coadd
    bright = stars & (mags > limit - 2) & (mags < limit - 1)
    detected = float(np.mean(separation.arcsec[bright] < 1.0))
    print(f"QC.MAGLIM {limit:.2f}: {bright.sum()} stars 1-2 mag brighter, {detected:.1%} found")
    assert bright.sum() >= 50
    assert detected >= 0.95


def test_phase3_keywords_and_weight_map(science: ProcessedScience) -> None:
    """The coadd carries ESO's Phase 3 keywords, taken from its own measurements; the
    file ASSON1 names is the weight map, the inverse square of the coadd's error."""
    with science.hdul() as hdul:
        primary = hdul[0].header
        coadd = hdul["COADD"].header
        error = hdul["COADD.ERR"].data
        dq = hdul["COADD.DQ"].data
        provenance = hdul["PROVENANCE"].data
    raws = [row["NAME"] for row in provenance if row["ROLE"] == "raw"]
    assert primary["PRODCATG"] == "SCIENCE.IMAGE"
    assert [primary[f"PROV{i}"] for i in range(1, len(raws) + 1)] == raws
    assert f"PROV{len(raws) + 1}" not in primary
    assert primary["NCOMBINE"] == len(raws) == 5
    assert primary["PHOTZP"] == coadd["HIERARCH ESO QC PHOTZP"]
    assert primary["PHOTSYS"] == "AB"
    assert primary["ABMAGLIM"] == pytest.approx(coadd["HIERARCH ESO QC MAGLIM"])
    assert primary["PSF_FWHM"] == coadd["HIERARCH ESO QC FWHM"]
    assert primary["TEXPTIME"] == pytest.approx(5 * 360.0)
    assert 360.0 <= primary["EXPTIME"] <= 5 * 360.0
    assert 0 < primary["PHOTZPER"] < 0.05
    # The astrometric random error matches the measured residual rms per axis.
    assert 0 < primary["CRDER1"] * 3600 < 0.1 and 0 < primary["CRDER2"] * 3600 < 0.1
    assert primary["PROG_ID"] and primary["OBID1"] > 0
    assert primary["ASSOC1"] == "ANCILLARY.WEIGHTMAP"
    assert primary["ASSON1"] == (science.processed.workspace.root / science.weight.path).name
    with science.hdul(science.weight) as hdul:
        assert hdul[0].header["PRODCATG"] == "ANCILLARY.WEIGHTMAP"
        weight = hdul["WEIGHT"].data
        assert hdul["WEIGHT"].header["CRVAL1"] == coadd["CRVAL1"]
    covered = dq == 0
    assert np.all(weight[~covered] == 0) or np.all(weight[~covered] < weight[covered].min())
    np.testing.assert_allclose(weight[covered], 1 / error[covered].astype(float) ** 2, rtol=1e-5)


def test_saturation_limit_follows_the_raw_star_peaks(science: ProcessedScience) -> None:
    """ABMAGSAT against the raw pixels. The field has no star bright enough to
    saturate, so each bright star's peak above its local background says where it
    would: m + 2.5 log10(peak / headroom to 65535). ABMAGSAT is the limit of a star
    centred on a pixel in the exposure most prone to saturate; a star's peak pixel
    falls short of that by its centring, so the upper quartile over a frame's stars
    (the better centred), at its faintest over the frames, is within 0.1 mag of it.
    Stars with no other source within 15 arcsec, searched for within 30 pixels of where
    the raw's WCS puts them; frames with at least 4 such stars."""
    from astropy.wcs import WCS

    with science.hdul() as hdul:
        limit = hdul[0].header["ABMAGSAT"]
    truth = _truth_catalogue(science)
    _, neighbour, _ = SkyCoord(
        truth["ra_deg"].to_numpy(), truth["dec_deg"].to_numpy(), unit="deg"
    ).match_to_catalog_sky(
        SkyCoord(truth["ra_deg"].to_numpy(), truth["dec_deg"].to_numpy(), unit="deg"),
        nthneighbor=2,
    )
    chosen = (
        (truth["is_galaxy"].to_numpy() == 0)
        & (truth["inst_r_SDSS"].to_numpy() < 18.5)
        & (neighbour.arcsec > 15)
    )
    stars = truth[chosen]
    listed = SkyCoord(stars["ra_deg"].to_numpy(), stars["dec_deg"].to_numpy(), unit="deg")
    mags = stars["inst_r_SDSS"].to_numpy()
    per_frame = []
    for path in sorted(science.processed.night.rglob("*.fits")):
        with fits.open(path) as hdul:
            if hdul[0].header.get("HIERARCH ESO DPR CATG") != "SCIENCE":
                continue
            for extname in FULL_SIZE_CCDS:
                pixels = hdul[extname].data.astype(float)
                x, y = WCS(hdul[extname].header).world_to_pixel(listed)
                ny, nx = pixels.shape
                inside = (x > 120) & (x < nx - 120) & (y > 80) & (y < ny - 80)
                estimates = []
                for i in np.flatnonzero(inside):
                    # The raw's WCS is off by up to 5 arcsec (24 pixels): a wide search.
                    ix, iy = round(float(x[i])), round(float(y[i]))
                    box = pixels[iy - 70 : iy + 71, ix - 70 : ix + 71]
                    background = np.median(np.concatenate([box[:10].ravel(), box[-10:].ravel()]))
                    peak = pixels[iy - 30 : iy + 31, ix - 30 : ix + 31].max() - background
                    if peak > 0:
                        estimates.append(mags[i] + 2.5 * np.log10(peak / (65535 - background)))
                if len(estimates) >= 4:
                    per_frame.append(float(np.percentile(estimates, 75)))
    print(f"ABMAGSAT {limit:.3f}; from raw peaks {max(per_frame):.3f} ({len(per_frame)} frames)")
    assert len(per_frame) >= 6
    assert max(per_frame) == pytest.approx(limit, abs=0.1)
