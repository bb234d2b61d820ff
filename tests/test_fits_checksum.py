"""FITS checksums computed by the product writer are astropy's, card for card."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits

from qclib.fitsio import verify_checksums
from qclib.products import _CHECKSUM_COMMENT, _HduWriter


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((41, 33), np.float32),
        ((7, 5), np.uint8),
        ((64, 64), np.int16),
        ((3, 1), np.float64),
        # More than one block of the compiled sum (stored_pixels._SUM_BLOCK words):
        ((1100, 1000), np.float32),
        ((2100, 2047), np.uint8),
    ],
)
def test_written_image_matches_astropy(shape, dtype, tmp_path) -> None:
    rng = np.random.default_rng(sum(shape))
    data = (rng.normal(0, 1000, shape)).astype(dtype)
    expected = fits.ImageHDU(data, name="CCD_1")
    expected.header["HIERARCH ESO QC RON"] = (3.25, "[adu] read noise")
    expected.add_checksum(when=_CHECKSUM_COMMENT)

    ours = fits.ImageHDU(data, name="CCD_1")
    ours.header["HIERARCH ESO QC RON"] = (3.25, "[adu] read noise")
    buffer = io.BytesIO()
    writer = _HduWriter(buffer)
    writer.image(fits.PrimaryHDU())
    writer.image(ours)

    assert ours.header.tostring() == expected.header.tostring()
    path = tmp_path / "x.fits"
    path.write_bytes(buffer.getvalue())
    assert verify_checksums(path) == []
    with fits.open(path, checksum=True) as hdus:
        np.testing.assert_array_equal(hdus[1].data, data)


def test_one_changed_byte_breaks_the_checksum(tmp_path) -> None:
    buffer = io.BytesIO()
    writer = _HduWriter(buffer)
    writer.image(fits.PrimaryHDU())
    writer.image(fits.ImageHDU(np.arange(100, dtype=np.float32).reshape(10, 10)))
    raw = bytearray(buffer.getvalue())
    raw[2880 * 2 + 17] ^= 1
    path = tmp_path / "x.fits"
    path.write_bytes(bytes(raw))
    assert any("DATASUM" in p for p in verify_checksums(path))
