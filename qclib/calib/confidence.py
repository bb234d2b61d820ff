"""The confidence map of an infrared master flat (MASTER_CONF), in compiled passes. Pure.

HAWK-I's and VIRCAM's pipelines weight pixels by a confidence map: the flat in per
cent, rounded, 0 on bad pixels. Made with numpy, the map and its flags took six
full-image passes and as many new arrays per detector (0.14-0.16 s of a HAWK-I chip
on the recipe's main thread, after the detector threads had finished the last
chips); here one pass makes what the flat product and the confidence product need,
and one more makes the confidence image, the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from qclib.compile_once import call_compiled_once


@dataclass(frozen=True)
class Confidence:
    """One detector's confidence map, as the flat's pass leaves it."""

    dq: np.ndarray  # the flat's flags with the dark's (uint8)
    stored: np.ndarray  # per cent of the flat, 0-255, 0 on bad pixels and where it is NaN
    undefined: np.ndarray  # flat indices where the flat is NaN on a good pixel
    flags: np.ndarray  # the bad pixels' flags, 0 elsewhere: the confidence product's DQ
    n_bad: int  # pixels with a bad flag

    def image(self) -> tuple[np.ndarray, int]:
        """The confidence as the product stores it (float32; NaN where the flat is NaN
        on a good pixel) and how many of its pixels are 0."""
        out = np.empty(self.stored.shape, np.float32)
        zeros = call_compiled_once(_image_kernel, self.stored, self.undefined, out)
        return out, int(zeros)


def confidence_map(
    flat: np.ndarray, flat_dq: np.ndarray, dark_dq: np.ndarray, bad: int
) -> Confidence:
    """The confidence map of the master flat ``flat`` (float32, normalised to 1) with
    flags ``flat_dq | dark_dq`` (uint8), of which ``bad`` are the bits of a bad pixel:
    ``clip(rint(100 * flat), 0, 255)`` in float32, 0 on bad pixels and where the flat
    is NaN, as uint8.

    >>> flat = np.array([[1.0, 0.996, np.nan, 3.0]], np.float32)
    >>> flags = np.array([[0, 0, 0, 4]], np.uint8)
    >>> made = confidence_map(flat, flags, np.zeros_like(flags), bad=4)
    >>> made.stored.tolist(), made.undefined.tolist(), made.n_bad
    ([[100, 100, 0, 0]], [2], 1)
    """
    if flat.shape != flat_dq.shape or flat.shape != dark_dq.shape:
        raise ValueError("the flat and both flag images have one shape")
    dq = np.empty(flat.shape, np.uint8)
    stored = np.empty(flat.shape, np.uint8)
    flags = np.empty(flat.shape, np.uint8)
    n_bad, n_undefined = call_compiled_once(
        _map_kernel,
        np.ascontiguousarray(flat, np.float32),
        np.ascontiguousarray(flat_dq),
        np.ascontiguousarray(dark_dq),
        np.uint8(bad),
        dq,
        stored,
        flags,
    )
    undefined = np.empty(n_undefined, np.int64)
    if n_undefined:
        call_compiled_once(
            _undefined_kernel, np.ascontiguousarray(flat, np.float32), flags, undefined
        )
    return Confidence(dq, stored, undefined, flags, int(n_bad))


@numba.njit(cache=True, nogil=True)
def _map_kernel(flat, flat_dq, dark_dq, bad, dq, stored, flags):  # type: ignore[no-untyped-def]
    """Flags, per-cent bytes and bad flags of every pixel; how many are bad, and how
    many good pixels have no flat value. A bad pixel's flags are never 0, so ``flags``
    tells a bad pixel from a good one afterwards."""
    ny, nx = flat.shape
    hundred = np.float32(100.0)
    top = np.float32(255.0)
    zero = np.float32(0.0)
    n_bad = 0
    n_undefined = 0
    for y in range(ny):
        for x in range(nx):
            d = flat_dq[y, x] | dark_dq[y, x]
            dq[y, x] = d
            percent = np.rint(hundred * flat[y, x])
            if d & bad:
                n_bad += 1
                flags[y, x] = d
                stored[y, x] = 0
            else:
                flags[y, x] = 0
                if math.isnan(percent):
                    n_undefined += 1
                    stored[y, x] = 0
                else:
                    stored[y, x] = np.uint8(min(max(percent, zero), top))
    return n_bad, n_undefined


@numba.njit(cache=True, nogil=True)
def _undefined_kernel(flat, flags, out):  # type: ignore[no-untyped-def]
    """Flat indices, in order, of the good pixels (no bad flag) where the flat is NaN."""
    nx = flat.shape[1]
    k = 0
    for y in range(flat.shape[0]):
        for x in range(nx):
            if flags[y, x] == 0 and math.isnan(flat[y, x]):
                out[k] = y * nx + x
                k += 1


@numba.njit(cache=True, nogil=True)
def _image_kernel(stored, undefined, out):  # type: ignore[no-untyped-def]
    """``stored`` as float32 with NaN at ``undefined``; how many pixels are 0."""
    flat = out.reshape(-1)
    source = stored.reshape(-1)
    for i in range(source.size):
        flat[i] = np.float32(source[i])
    for i in undefined:
        flat[i] = np.nan
    zeros = 0
    for i in range(flat.size):
        zeros += flat[i] == 0
    return zeros
