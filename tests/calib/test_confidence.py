"""An IR flat's confidence map from its compiled passes is, byte for byte, the numpy
construction it replaced."""

from __future__ import annotations

import numpy as np
import pytest

from qclib.calib.confidence import confidence_map
from qclib.calib.dq import DQ_COLD, DQ_HOT, DQ_NO_DATA, DQ_SATURATED

BAD = DQ_HOT | DQ_COLD | DQ_NO_DATA


def _numpy_map(flat: np.ndarray, flat_dq: np.ndarray, dark_dq: np.ndarray):  # type: ignore[no-untyped-def]
    """What qc_ir_twilight_flat computed with numpy before."""
    dq = flat_dq | dark_dq
    percent = np.clip(np.rint(100.0 * np.asarray(flat, np.float32)), 0, 255)
    bad = (dq & BAD) != 0
    undefined = np.flatnonzero(np.isnan(percent) & ~bad)
    stored = np.where(bad | np.isnan(percent), 0, percent).astype(np.uint8)
    image = stored.astype(np.float32)
    image.ravel()[undefined] = np.nan
    return dq, stored, undefined, np.where(bad, dq, np.uint8(0)), image


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_map_is_numpys(seed: int) -> None:
    """Responses around 1 and far off it (negative, above 2.55, halfway cases that
    round to even), NaN and infinite pixels, flags from both inputs, some of them not
    bad (saturated): every array and count the same."""
    rng = np.random.default_rng(seed)
    shape = (97, 131)
    flat = rng.normal(1.0, 0.05, shape).astype(np.float32)
    far = rng.random(shape) < 0.02
    flat[far] = rng.uniform(-1, 4, far.sum()).astype(np.float32)
    flat.ravel()[rng.choice(flat.size, 40)] = np.float32(0.125)  # 12.5 -> 12
    flat.ravel()[rng.choice(flat.size, 40)] = np.float32(0.375)  # 37.5 -> 38
    flat.ravel()[rng.choice(flat.size, 30)] = np.nan
    flat.ravel()[rng.choice(flat.size, 5)] = np.inf
    flat.ravel()[rng.choice(flat.size, 5)] = -np.inf
    flags = np.array([0, DQ_HOT, DQ_COLD, DQ_NO_DATA, DQ_SATURATED], np.uint8)
    flat_dq = np.where(rng.random(shape) < 0.05, rng.choice(flags, shape), 0).astype(np.uint8)
    dark_dq = np.where(rng.random(shape) < 0.05, rng.choice(flags, shape), 0).astype(np.uint8)
    dq, stored, undefined, bad_flags, image = _numpy_map(flat, flat_dq, dark_dq)
    assert undefined.size > 0 and (bad_flags != 0).any()  # both paths are exercised
    made = confidence_map(flat, flat_dq, dark_dq, BAD)
    for mine, theirs in ((made.dq, dq), (made.stored, stored), (made.flags, bad_flags)):
        assert mine.dtype == theirs.dtype and mine.tobytes() == theirs.tobytes()
    np.testing.assert_array_equal(made.undefined, undefined)
    assert made.n_bad == np.count_nonzero(dq & BAD)
    confidence, zeros = made.image()
    assert confidence.dtype == np.float32 and confidence.tobytes() == image.tobytes()
    assert zeros == np.count_nonzero(image == 0)


def test_a_map_refuses_planes_of_other_shapes() -> None:
    flat = np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match="one shape"):
        confidence_map(flat, np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8), BAD)
