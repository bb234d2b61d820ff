"""clipped_difference_stats: the clipped statistics of two stored int16 frames'
difference, against the clipping done the plain way in numpy (the same start, window
and stopping rule), and the photon transfer it serves, mapped against in memory."""

from __future__ import annotations

import numpy as np
import pytest

from qclib.calib.gain import measure_photon_transfer
from qclib.calib.stats import clipped_stats, robust_start
from qclib.calib.stored_difference import clipped_difference_stats
from qclib.config.instrument import parse_section
from qclib.instruments import load_instrument
from qclib.stored_pixels import StoredImage


def _stored(values: np.ndarray, bscale: float = 1.0, bzero: float = 32768.0) -> StoredImage:
    """Whole physical values as a FITS raw stores them (big-endian int16 less BZERO)."""
    stored = np.rint((values - bzero) / bscale).astype(">i2")
    return StoredImage(stored.view(np.uint16), bscale, bzero)


def _clipped_in_numpy(
    a: np.ndarray, b: np.ndarray, sigma: float, maxiters: int = 10
) -> tuple[int, float, float]:
    """``clipped_stats``' iterations on every value of ``a - b``, kept by the window."""
    centre, scale = robust_start(a, b)  # type: ignore[misc]
    values = (a.astype(np.float64) - b).ravel()
    count, mean, std = -1, centre, scale
    for _ in range(maxiters):
        kept = values[np.abs(values - centre) <= sigma * scale]
        if kept.size < 2:
            break
        mean, std = float(kept.mean()), float(kept.std(ddof=1))
        if kept.size == count:
            break
        count, centre, scale = kept.size, mean, std
    return count, mean, std


def _case(name: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    shape = (1500, 700)
    if name == "bias":  # narrow: a few ADU
        a, b = (np.rint(rng.normal(400, 5, shape)) for _ in range(2))
    elif name == "flat":  # wide, with particle hits far out
        a, b = (np.rint(rng.normal(20000, 150, shape)) for _ in range(2))
        a[rng.random(shape) < 1e-3] = 65000
    elif name == "heavy tails":  # at 5 sigma the window outgrows the first span
        core = rng.random(shape) < 0.6
        a = np.rint(np.where(core, rng.normal(1000, 1, shape), rng.normal(1000, 20, shape)))
        b = np.full(shape, 900.0)
    elif name == "extremes":  # the whole int16 range on both sides
        a = np.rint(rng.normal(30000, 20000, shape)).clip(0, 65535)
        b = np.rint(rng.normal(30000, 20000, shape)).clip(0, 65535)
    else:  # a tiny array: one block, swept without threads
        a, b = (np.rint(rng.normal(100, 3, (7, 11))) for _ in range(2))
    return a, b


@pytest.mark.parametrize("name", ["bias", "flat", "heavy tails", "extremes", "tiny"])
@pytest.mark.parametrize("sigma", [3.0, 5.0])
def test_the_kept_set_is_numpy_own(name: str, sigma: float) -> None:
    a, b = _case(name, np.random.default_rng(len(name)))
    got = clipped_difference_stats(_stored(a), _stored(b), sigma=sigma)
    count, mean, std = _clipped_in_numpy(a.astype(np.float32), b.astype(np.float32), sigma)
    assert got.count == count
    # Whole values: the sum, so the mean, is exact; the variance is summed per value.
    assert got.mean == mean
    assert got.std == pytest.approx(std, rel=1e-12)


def test_a_section_of_a_frame_is_read_in_place() -> None:
    rng = np.random.default_rng(3)
    a, b = (np.rint(rng.normal(5000, 40, (900, 600))) for _ in range(2))
    rows, cols = slice(10, 890), slice(48, 560)
    got = clipped_difference_stats(
        _stored(a).part(rows, cols), _stored(b).part(rows, cols), sigma=5
    )
    count, mean, std = _clipped_in_numpy(
        a[rows, cols].astype(np.float32), b[rows, cols].astype(np.float32), 5
    )
    assert (got.count, got.mean) == (count, mean)
    assert got.std == pytest.approx(std, rel=1e-12)


@pytest.mark.parametrize(("scale_b", "zero_b"), [(1.0, 0.0), (2.0, 32768.0)])
def test_differences_not_whole_are_clipped_stats(scale_b: float, zero_b: float) -> None:
    rng = np.random.default_rng(4)
    a = np.rint(rng.normal(20000, 150, (800, 600)))
    b = 2.0 * np.rint(rng.normal(10000, 75, (800, 600)))
    stored_a, stored_b = _stored(a), _stored(b, scale_b, zero_b)
    got = clipped_difference_stats(stored_a, stored_b, sigma=5)
    assert got == clipped_stats(stored_a[...], minus=stored_b[...], sigma=5)


def test_photon_transfer_from_maps_is_that_from_arrays() -> None:
    """Stored raws (a CCD's whole ADU, BZERO 32768) give the gain and read noise that
    the same frames in memory give, to the float64 rounding of the variances."""
    geometry = load_instrument("OMEGACAM").geometry["test"]
    rng = np.random.default_rng(6)
    shape = (geometry.naxis2, geometry.naxis1)
    rows, cols = parse_section(geometry.data_section)

    def frame(electrons: float) -> np.ndarray:
        """Overscan at 500 ADU, the data section lit (2.5 e-/ADU), 2.2 ADU read noise."""
        image = 500 + rng.normal(0, 2.2, shape)
        light = rng.normal(electrons, np.sqrt(electrons), shape) / 2.5 if electrons else 0.0
        image[rows, cols] += light if np.isscalar(light) else light[rows, cols]
        return np.rint(image)

    flats = (frame(20000.0), frame(20000.0))
    biases = (frame(0.0), frame(0.0))
    arrays = measure_photon_transfer(
        tuple(f.astype(np.float32) for f in flats),  # type: ignore[arg-type]
        tuple(b.astype(np.float32) for b in biases),  # type: ignore[arg-type]
        geometry,
        dark_signal_adu=0.0,
    )
    mapped = measure_photon_transfer(
        (_stored(flats[0]), _stored(flats[1])),
        (_stored(biases[0]), _stored(biases[1])),
        geometry,
        dark_signal_adu=0.0,
    )
    assert mapped.signal_adu == arrays.signal_adu
    assert mapped.gain_e_per_adu == pytest.approx(arrays.gain_e_per_adu, rel=1e-6)
    assert mapped.read_noise_adu == pytest.approx(arrays.read_noise_adu, rel=1e-6)
    assert mapped.gain_e_per_adu == pytest.approx(2.5, rel=0.02)
