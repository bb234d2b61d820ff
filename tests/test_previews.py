"""Previews (thumbnails and histograms) of product images: what they measure, the same
whether made from the pixels or read back from the product, and kept only while they
are the product's."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from qclib.fitsio import scan_fits
from qclib.previews import (
    HISTOGRAM_BINS,
    DetectorPreview,
    display_range,
    histogram_counts,
    make_preview,
    preview_path,
    previews_from_file,
    read_previews,
    thumbnail_steps,
    write_previews,
)
from qclib.products import DetectorProduct, Input, ProductSpec, write_product

SPEC = ProductSpec(
    pro_catg="MASTER_BIAS",
    recipe="qc_master_bias",
    instrument="OMEGACAM",
    raw_header={"INSTRUME": "OMEGACAM"},
    inputs=(Input("raw1.fits", "BIAS", "0" * 64, "raw"),),
)


def _ramp(shape: tuple[int, int]) -> np.ndarray:
    y, x = np.indices(shape)
    return (1000.0 * y + x).astype(np.float32)


def test_thumbnail_is_the_block_means_of_every_fourth_pixel() -> None:
    image = _ramp((2048, 1024))  # longer side 2048: a thumbnail pixel is 16 pixels
    assert thumbnail_steps(image.shape) == (4, 4)
    preview = make_preview("CCD_1", image, "adu")
    assert preview.thumbnail.shape == (128, 64)
    # Samples at rows 16 i + {0, 4, 8, 12}: their mean is 16 i + 6 (columns alike).
    i, j = np.indices(preview.thumbnail.shape)
    np.testing.assert_array_equal(preview.thumbnail, 1000.0 * (16 * i + 6) + (16 * j + 6))
    assert preview.thumbnail.dtype == np.float32


def test_histogram_counts_the_central_sampled_pixels() -> None:
    rng = np.random.default_rng(1)
    image = rng.normal(100.0, 5.0, (1024, 1024)).astype(np.float32)
    image[::7, ::3] = np.nan  # left out
    preview = make_preview("CCD_1", image)
    values = image[::4, ::4].ravel()
    values = values[np.isfinite(values)]
    low, high = np.percentile(values, [0.1, 99.9])
    assert (preview.low, preview.high) == (float(low), float(high))  # numpy's floats
    assert preview.counts.size == HISTOGRAM_BINS
    expected, _ = np.histogram(values, bins=HISTOGRAM_BINS, range=(preview.low, preview.high))
    np.testing.assert_array_equal(preview.counts, expected)
    # 99.8 % of the sampled pixels, within one pixel of rounding at each end.
    assert abs(preview.counts.sum() - 0.998 * values.size) <= 2
    assert preview.centres[0] == pytest.approx(low + (high - low) / (2 * HISTOGRAM_BINS))


def test_an_image_without_values_has_an_empty_histogram() -> None:
    preview = make_preview("CCD_1", np.full((64, 64), np.nan, np.float32))
    assert preview.counts.size == 0 and math.isnan(preview.low)
    assert np.isnan(preview.thumbnail).all()
    assert display_range([preview]) == (0.0, 1.0)


def test_display_range_spans_all_thumbnails() -> None:
    low = make_preview("A", np.zeros((64, 64), np.float32))
    high = make_preview("B", np.full((64, 64), 10.0, np.float32))
    assert display_range([low, high]) == (0.0, 10.0)


def _same(a: list[DetectorPreview], b: list[DetectorPreview]) -> None:
    assert [p.extname for p in a] == [p.extname for p in b]
    for p, q in zip(a, b, strict=True):
        assert p.unit == q.unit
        np.testing.assert_array_equal(p.thumbnail, q.thumbnail)
        np.testing.assert_array_equal(p.counts, q.counts)
        assert (p.low, p.high) == (q.low, q.high)


@pytest.mark.parametrize("shape", [(4100, 2048), (2048, 2048), (333, 517), (40, 60)])
def test_previews_read_from_a_product_are_those_of_its_pixels(
    tmp_path: Path, shape: tuple[int, int]
) -> None:
    rng = np.random.default_rng(2)
    detectors = []
    for n in range(2):
        data = (rng.normal(500.0, 3.0, shape) + _ramp(shape) * 1e-3).astype(np.float32)
        data[5, 7] = np.nan
        error = np.ones(shape, np.float32)
        dq = np.zeros(shape, np.uint8)
        detectors.append(DetectorProduct(f"CCD_{n + 1}", data, error, dq, {}, unit="adu"))
    product = tmp_path / "P.fits"
    write_product(product, SPEC, detectors)
    hdus = [h for h in scan_fits(product).extensions if h.extname in ("CCD_1", "CCD_2")]
    made = [make_preview(d.extname, d.data, d.unit) for d in detectors]
    _same(previews_from_file(product, hdus), made)


def test_kept_previews_belong_to_one_content(tmp_path: Path) -> None:
    product = tmp_path / "night" / "P.fits"
    product.parent.mkdir()
    product.write_bytes(b"x")
    previews = [make_preview("CCD_1", _ramp((256, 256)), "adu")]
    write_previews(product, "a" * 64, previews)
    assert preview_path(product) == tmp_path / "night" / ".previews" / "P.fits.npz"
    _same(read_previews(product, "a" * 64) or [], previews)
    assert read_previews(product, "b" * 64) is None  # the product was made again
    preview_path(product).write_bytes(b"not an npz")
    assert read_previews(product, "a" * 64) is None
    preview_path(product).unlink()
    assert read_previews(product, "a" * 64) is None


def _histogram_cases():
    rng = np.random.default_rng(7)
    noise = rng.normal(100.0, 5.0, 200_000).astype(np.float32)
    yield "noise, central range", noise, *np.percentile(noise, [0.1, 99.9]).tolist()
    edges = np.linspace(90.0, 110.0, HISTOGRAM_BINS + 1, dtype=np.float32)
    on_edges = np.concatenate([edges, np.nextafter(edges, np.float32(0)), noise])
    yield "values on and just below every edge", on_edges, 90.0, 110.0
    yield "a constant", np.full(1000, 7.25, np.float32), 7.25, 7.25
    ratios = rng.uniform(0.0, 1.0, 100_000).astype(np.float32)
    yield "a range not exact in float32", ratios, 0.1, 0.7


@pytest.mark.parametrize(("case", "values", "low", "high"), list(_histogram_cases()))
def test_histogram_counts_are_numpys(
    case: str, values: np.ndarray, low: float, high: float
) -> None:
    expected, _ = np.histogram(values, bins=HISTOGRAM_BINS, range=(low, high))
    counts = histogram_counts(values, HISTOGRAM_BINS, low, high)
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, expected, err_msg=case)


def test_a_range_narrower_than_its_bins_still_has_a_histogram() -> None:
    """Fewer float32 steps between the ends than bins: numpy refuses (its edges repeat);
    the preview counts each value in range once, in bins ordered as the values."""
    rng = np.random.default_rng(8)
    steps = rng.normal(3.0e7, 1.0, 50_000).astype(np.float32)  # a few float32 steps
    constant = np.full(10, 3.0e9, np.float32)  # 3e9 +- 0.5 is 3e9 in float32
    for values in (steps, constant):
        low, high = (float(v) for v in np.percentile(values, [0.1, 99.9]))
        with pytest.raises(ValueError, match="Too many bins"):
            np.histogram(values, bins=HISTOGRAM_BINS, range=(low, high))
        counts = histogram_counts(values, HISTOGRAM_BINS, low, high)
        inside = (values >= np.float32(low)) & (values <= np.float32(high))
        assert counts.sum() == inside.sum()
        levels = np.unique(values[inside])
        filled = np.nonzero(counts)[0]
        assert filled.size == levels.size  # each float32 value its own bin, in order
        np.testing.assert_array_equal(counts[filled], [(values == v).sum() for v in levels])
    preview = make_preview("CCD_1", np.full((64, 64), 3.0e9, np.float32))
    assert preview.counts.sum() == 16 * 16
