"""A product's detectors written in place by several tasks: the file one task writes,
byte for byte; what cannot be laid out in place is refused, never half-renamed."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from qclib.products import (
    DETECTOR_HEADER_BLOCKS,
    DetectorProduct,
    Input,
    ProductPart,
    ProductSpec,
    finish_product,
    part_file,
    write_product,
    write_product_part,
)

SPEC = ProductSpec(
    pro_catg="MASTER_BIAS",
    recipe="qc_master_bias",
    instrument="OMEGACAM",
    raw_header={"INSTRUME": "OMEGACAM", "DET.CHIP.ID": "x"},
    inputs=(Input("raw1.fits", "BIAS", "0" * 64, "raw"),),
)


def _detectors(n: int, shape: tuple[int, int] = (37, 53)) -> list[DetectorProduct]:
    rng = np.random.default_rng(n)
    out = []
    for i in range(n):
        # A varying number of QC values: the headers still take the same room.
        qc = {f"QC.VALUE{j}": (float(rng.normal()), "a value") for j in range(i % 4 + 1)}
        out.append(
            DetectorProduct(
                f"CCD_{i + 1}",
                rng.normal(size=shape).astype(np.float32),
                rng.random(shape).astype(np.float32),
                rng.integers(0, 16, shape, dtype=np.uint8),
                qc,
            )
        )
    return out


def _write_in_parts(product: Path, detectors: list[DetectorProduct], bounds: list[int]) -> str:
    tasks = len(bounds) - 1
    extents = []
    for index in reversed(range(tasks)):  # the last first: no part relies on order
        lo, hi = bounds[index], bounds[index + 1]
        part = ProductPart(product, index, tasks, lo, hi - lo)
        extents.append(write_product_part(part, SPEC, detectors[lo:hi]))
    return finish_product(product, extents)


@pytest.mark.parametrize("bounds", [[0, 1, 2, 3], [0, 3, 5, 9], [0, 9]])
def test_parts_written_in_place_are_the_product_of_one_task(tmp_path: Path, bounds) -> None:
    detectors = _detectors(bounds[-1])
    whole = tmp_path / "one" / "P.fits"
    sha = write_product(whole, SPEC, detectors)
    shared = tmp_path / "parts" / "P.fits"
    assert _write_in_parts(shared, detectors, bounds) == sha
    assert shared.read_bytes() == whole.read_bytes()
    assert hashlib.sha256(shared.read_bytes()).hexdigest() == sha
    assert not part_file(shared).exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a bad checksum would warn
        with fits.open(shared, checksum=True) as hdus:
            assert [h.name for h in hdus][1:4] == ["CCD_1", "CCD_1.ERR", "CCD_1.DQ"]
            assert hdus[-1].name == "PROVENANCE"
            np.testing.assert_array_equal(hdus["CCD_2"].data, detectors[1].data)
            image = hdus["CCD_1"]
            assert image.header["HIERARCH ESO QC VALUE0"] == detectors[0].qc["QC.VALUE0"][0]
            assert image._header_offset + DETECTOR_HEADER_BLOCKS["image"] * 2880 == (
                image._data_offset
            )


def test_a_header_too_large_for_its_room_is_refused(tmp_path: Path) -> None:
    (det,) = _detectors(1)
    many = {f"QC.VALUE{j}": (float(j), "") for j in range(200)}
    det = DetectorProduct(det.extname, det.data, det.error, det.dq, many)
    with pytest.raises(ValueError, match="218 cards, more than the 143 a detector header holds"):
        write_product(tmp_path / "P.fits", SPEC, [det])
    assert not list(tmp_path.iterdir())


def test_detectors_of_different_sizes_are_not_written_in_place(tmp_path: Path) -> None:
    detectors = [*_detectors(1), *_detectors(1, shape=(10, 10))]
    part = ProductPart(tmp_path / "P.fits", 0, 1, 0, 2)
    with pytest.raises(ValueError, match=r"detector CCD_1 is .* the first of its part"):
        write_product_part(part, SPEC, detectors)


def test_parts_that_do_not_tile_the_file_are_not_renamed(tmp_path: Path) -> None:
    """Two tasks that laid the detectors out differently (here: the second thinks the
    first had one detector more): the product is refused, nothing is renamed."""
    detectors = _detectors(4)
    product = tmp_path / "P.fits"
    first = write_product_part(ProductPart(product, 0, 2, 0, 2), SPEC, detectors[:2])
    second = write_product_part(ProductPart(product, 1, 2, 3, 1), SPEC, detectors[3:])
    with pytest.raises(ValueError, match="do not follow each other"):
        finish_product(product, [first, second])
    assert not product.exists()


def test_qc_cards_keep_their_comment_where_it_fits(tmp_path: Path) -> None:
    """A QC value's unit and meaning stay on its card (an operations astronomer reads
    the header); a comment too long for the card is dropped, never the value."""
    (det,) = _detectors(1)
    long_key = "QC.A.VERY.LONG.PARAMETER.NAME.THAT.FILLS.THE.CARD"
    qc = {"QC.RON": (2.1, "[ADU] read noise"), long_key: (1.5, "x" * 60)}
    write_product(
        tmp_path / "P.fits", SPEC, [DetectorProduct("CCD_1", det.data, det.error, det.dq, qc)]
    )
    header = fits.getheader(tmp_path / "P.fits", "CCD_1")
    assert header.comments["HIERARCH ESO QC RON"] == "[ADU] read noise"
    assert header["HIERARCH ESO QC A VERY LONG PARAMETER NAME THAT FILLS THE CARD"] == 1.5
    assert header.comments["HIERARCH ESO QC A VERY LONG PARAMETER NAME THAT FILLS THE CARD"] == ""
