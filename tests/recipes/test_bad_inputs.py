"""Inputs no product can come from give UnprocessableDataError naming the frame or
the keyword: too few frames, all-NaN frames, saturated frames, mixed setups."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from qclib.associate import AssociationBlock
from qclib.calib.dark import Exposure, make_master_dark
from qclib.calib.flat import make_master_flat
from qclib.calib.gain import measure_photon_transfer
from qclib.calib.parameters import DarkConfig
from qclib.calib.readout import check_frames
from qclib.errors import UnprocessableDataError
from qclib.fitsio import scan_fits
from qclib.instruments import load_instrument
from qclib.recipes.base import RawInput, RecipeContext
from qclib.recipes.registry import find_recipe

GEOMETRY = load_instrument("OMEGACAM").geometry["test"]


def _frames(n: int, level: float = 1000.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(level, 5.0, (n, GEOMETRY.naxis2, GEOMETRY.naxis1)).astype(np.float32)


def test_too_few_frames() -> None:
    with pytest.raises(UnprocessableDataError, match=r"1 dark frame.*at least 2 are needed"):
        make_master_dark(_frames(1), GEOMETRY, Exposure(10, 10), pixel_size_um=15)
    with pytest.raises(UnprocessableDataError, match=r"2 flat frame.*at least 3"):
        make_master_flat(_frames(2), GEOMETRY, [1.0, 1.0])


def test_all_nan_frame_is_named() -> None:
    frames = _frames(3)
    frames[1] = np.nan
    with pytest.raises(UnprocessableDataError, match=r"dark frame b\.fits has no finite pixel"):
        make_master_dark(
            frames, GEOMETRY, Exposure(10, 10), pixel_size_um=15, names=["a", "b.fits", "c"]
        )


def test_saturated_frame_is_named() -> None:
    frames = _frames(3, level=30000.0)
    frames[2, 100:400] = 65535.0
    with pytest.raises(UnprocessableDataError, match=r"flat frame F3 is saturated \(5\d%"):
        make_master_flat(
            frames, GEOMETRY, [1.0] * 3, saturation_adu=65535, names=["F1", "F2", "F3"]
        )


def test_flat_without_light() -> None:
    with pytest.raises(UnprocessableDataError, match="has no light"):
        make_master_flat(_frames(3, level=0.0), GEOMETRY, [1.0] * 3)


def test_gain_needs_photon_noise() -> None:
    frames = _frames(4)
    with pytest.raises(UnprocessableDataError, match=r"no signal above|no photon noise"):
        measure_photon_transfer((frames[0], frames[1]), (frames[2], frames[3]), GEOMETRY)


def test_check_frames_accepts_good_frames() -> None:
    check_frames(_frames(3), names=["a", "b", "c"], min_frames=3, what="bias", saturation_adu=65535)


def test_mixed_exposure_times_are_refused(omegacam_night: Path) -> None:
    darks = sorted(omegacam_night.glob("*.fits"))[5:7]
    raws = []
    for i, path in enumerate(darks):
        scan = scan_fits(path)
        primary = dataclasses.replace(scan.hdus[0], header={**scan.primary, "EXPTIME": 900.0 + i})
        scan = dataclasses.replace(scan, hdus=(primary, *scan.hdus[1:]))
        raws.append(RawInput(path.name, path, "DARK", "", scan))
    spec = find_recipe("qc_master_dark")
    block = AssociationBlock(
        id="AB",
        instrument="OMEGACAM",
        action="MASTER_DARK",
        recipe="qc_master_dark",
        night="2026-11-23",
        mid_mjd=61367.7,
        inputs=tuple(r.arcfile for r in raws),
        input_category="DARK",
        setup={},
        products=("MASTER_DARK",),
    )
    ctx = RecipeContext(
        load_instrument("OMEGACAM"), block, spec, DarkConfig(), tuple(raws), {}, Path(), ""
    )
    with pytest.raises(
        UnprocessableDataError, match=r"dark frames of mixed EXPTIME \(900.0, 901.0\)"
    ):
        ctx.require_setup("MASTER_DARK", raws, "dark")
