"""A recipe with a bug of its own, importable by a pool's worker processes."""

from __future__ import annotations

import numpy as np


def run(ctx):  # type: ignore[no-untyped-def]
    return np.zeros(3)[np.array([5])]  # IndexError inside numpy
