"""Raws mapped where FITS stores them give, for the part a statistic samples, the
values (and so the statistics) of the frames read whole, bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from qclib.calib.dark import FRAME_COLUMN_STEP, _taken_columns, dark_signal, frame_dark_signal
from qclib.calib.readout import channel_columns, reference_levels
from qclib.config.instrument import Geometry, parse_section
from qclib.fitsio import map_image, map_stored, read_image, scan_fits
from qclib.stored_pixels import StoredStack

IR = Geometry(
    naxis1=256,
    naxis2=192,
    bitpix=-32,
    data_section="[5:252,5:188]",
    gap_x_px=0,
    gap_y_px=0,
    readout_channel_px=64,
)
CCD = Geometry(
    naxis1=160,
    naxis2=128,
    bitpix=16,
    data_section="[9:152,1:128]",
    overscan_section="[153:160,1:128]",
    gap_x_px=0,
    gap_y_px=0,
)


def _write(path: Path, stored: np.ndarray, bscale: float = 1.0, bzero: float = 0.0) -> Path:
    hdu = fits.ImageHDU(stored, name="CHIP1")
    if bscale != 1.0 or bzero:
        hdu.header["BSCALE"], hdu.header["BZERO"] = bscale, bzero
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path


@pytest.mark.parametrize(
    ("dtype", "bscale", "bzero", "scale"),
    [
        (">f4", 1.0, 0.0, 1.0),
        (">f4", 1.0, 0.0, 1 / 3),
        (">i2", 1.0, 32768.0, 1.0),
        (">i2", 1.0, 32768.0, 1 / 6),
        (">i2", 0.37, 12.5, 1.0),
        (">i4", 1.0, 0.0, 0.25),
    ],
)
def test_a_mapped_part_is_that_part_of_the_read_image(
    tmp_path: Path, dtype: str, bscale: float, bzero: float, scale: float
) -> None:
    rng = np.random.default_rng(1)
    stored = rng.normal(1000, 300, (64, 96)).astype(dtype)
    path = _write(tmp_path / "raw.fits", stored)
    if bscale != 1.0 or bzero:
        with fits.open(path, mode="update", do_not_scale_image_data=True) as hdus:
            hdus[1].header["BSCALE"], hdus[1].header["BZERO"] = bscale, bzero
    hdu = scan_fits(path).extensions[0]
    whole = read_image(path, hdu)
    whole *= np.float32(scale)
    mapped = map_image(path, hdu, scale=scale)
    columns = np.array([0, 1, 8, 9, 17, 95])
    for key in [(slice(3, 60, 2), columns), (slice(None, 4),), (slice(10, 20), slice(5, 90, 3))]:
        assert mapped[key].dtype == np.float32
        np.testing.assert_array_equal(mapped[key], whole[key])


def _dark(rng: np.random.Generator, geometry: Geometry) -> np.ndarray:
    frame = rng.normal(0, 1, (geometry.naxis2, geometry.naxis1)).astype(np.float32)
    frame[parse_section(geometry.data_section)] += np.float32(2.4)  # the dark signal
    width = geometry.readout_channel_px or geometry.naxis1
    for first in range(0, geometry.naxis1, width):  # a level per channel and parity
        frame[:, first : first + width : 2] += np.float32(rng.normal(300, 20))
        frame[:, first + 1 : first + width : 2] += np.float32(rng.normal(300, 20))
    frame[rng.integers(0, geometry.naxis2, 40), rng.integers(0, geometry.naxis1, 40)] += 5e3
    return frame


@pytest.mark.parametrize("geometry", [IR, CCD], ids=["readout channels", "overscan"])
def test_a_raw_dark_s_signal_is_the_same_mapped_or_read(tmp_path: Path, geometry: Geometry) -> None:
    rng = np.random.default_rng(2)
    frame = _dark(rng, geometry)
    if geometry.bitpix == 16:
        path = _write(tmp_path / "dark.fits", (np.round(frame) - 32768).astype(">i2"), bzero=32768)
    else:
        path = _write(tmp_path / "dark.fits", frame.astype(">f4"))
    hdu = scan_fits(path).extensions[0]
    rows, cols = parse_section(geometry.data_section)
    hot = np.zeros((rows.stop - rows.start, cols.stop - cols.start), bool)
    hot[rng.integers(0, hot.shape[0], 30), rng.integers(0, hot.shape[1], 30)] = True
    groups = channel_columns(geometry, cols)
    read = frame_dark_signal(read_image(path, hdu), geometry, hot=hot, groups=groups)
    mapped = frame_dark_signal(map_image(path, hdu), geometry, hot=hot, groups=groups)
    assert mapped == read
    if groups is not None:  # the columns taken packed: the sums of the strided sample
        whole = read_image(path, hdu)
        sampled = [slice(g.start, g.stop, g.step * FRAME_COLUMN_STEP) for g in groups]
        minus = reference_levels(whole, geometry)
        assert read == dark_signal(whole[rows, cols][::2], hot[::2], sampled, minus=minus)
    # Noise of 1 ADU: the reference levels (256 values per channel and parity; 1024
    # overscan values) and the sample's mean each hold to about 0.03 ADU.
    assert read == pytest.approx(2.4, abs=0.15)


def test_sampled_columns_are_packed_only_where_each_group_stays_evenly_spaced() -> None:
    groups = [slice(1, 60, 8), slice(0, 60, 8), slice(60, 124, 8), slice(61, 124, 8)]
    taken, packed = _taken_columns(groups, 124)
    assert taken.size == 32
    for group, slot in zip(groups, packed, strict=True):
        np.testing.assert_array_equal(taken[slot], np.arange(124)[group])
    uneven = [slice(0, 20, 4), slice(1, 20, 8)]  # 0 1 4 8 9 12 16 17: 0, 4, 8... uneven
    taken, packed = _taken_columns(uneven, 20)
    np.testing.assert_array_equal(taken, np.arange(20))
    assert packed == uneven


@pytest.mark.parametrize(
    ("dtype", "bscale", "bzero", "kind"),
    [
        (">f4", 1.0, 0.0, "float32"),
        (">i2", 1.0, 32768.0, "int16"),
        (">f4", 2.0, 0.0, None),  # scaled: read whole
        (">f4", 1.0, 10.0, None),
        (">f8", 1.0, 0.0, None),
        (">i4", 1.0, 0.0, None),
    ],
)
def test_what_a_combination_reads_as_stored(
    tmp_path: Path, dtype: str, bscale: float, bzero: float, kind: str | None
) -> None:
    """``map_stored``: int16 and unscaled float32 images mapped as stored, indexing into
    the values ``read_image`` gives; None for any other storage."""
    stored = np.random.default_rng(2).normal(1000, 300, (16, 24)).astype(dtype)
    path = _write(tmp_path / "raw.fits", stored, bscale, bzero)
    hdu = scan_fits(path).hdus[1]
    image = map_stored(path, hdu)
    if kind is None:
        assert image is None
        return
    assert image is not None and StoredStack((image,)).kind == kind
    np.testing.assert_array_equal(image[:, :], read_image(path, hdu))
