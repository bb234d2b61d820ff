"""Stored FITS integers to physical float32 values in one compiled pass. Pure.

Raw frames are big-endian int16 with BZERO = 32768 (and BSCALE = 1). numpy converts
them in three passes (byte swap and cast, then BSCALE, then BZERO: 3.3 + 2.2 ms per
OmegaCAM CCD after the 2.4 ms read); this does the same arithmetic, in float32 and in
the same order, in one pass over the pixels on every core, so the result is bit for
bit numpy's.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, cache=True, nogil=True)
def _int16_be_to_float32(raw, out, bscale, bzero, scaled):  # type: ignore[no-untyped-def]
    """``raw``: the stored big-endian int16 values seen as native uint16."""
    ny, nx = out.shape
    for y in numba.prange(ny):
        for x in range(nx):
            u = raw[y, x]
            v = np.float32(np.int16(np.uint16((u >> np.uint16(8)) | (u << np.uint16(8)))))
            if scaled:
                v = v * bscale
            out[y, x] = v + bzero


def int16_be_to_physical(raw: np.ndarray, out: np.ndarray, bscale: float, bzero: float) -> None:
    """Write ``raw`` (big-endian int16, 2D) times ``bscale`` plus ``bzero`` into ``out``
    (float32, same shape), as numpy's ``copyto`` then ``*=`` then ``+=`` would.

    >>> raw = np.array([[-32768, 0, 1]], dtype=">i2")
    >>> out = np.empty((1, 3), np.float32)
    >>> int16_be_to_physical(raw, out, 1.0, 32768.0); out
    array([[    0., 32768., 32769.]], dtype=float32)
    """
    if raw.dtype != np.dtype(">i2") or out.dtype != np.float32 or raw.shape != out.shape:
        raise ValueError("raw must be big-endian int16 and out float32 of its shape")
    _int16_be_to_float32(
        raw.view(np.uint16), out, np.float32(bscale), np.float32(bzero), bscale != 1.0
    )
