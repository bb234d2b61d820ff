"""The errors that speak to the user cross process boundaries intact (a worker's error
reaches the pass that records it)."""

from __future__ import annotations

import pickle

from qclib.errors import (
    ConfigError,
    IncompleteBlockError,
    QuarantineError,
    UnprocessableDataError,
)


def test_errors_survive_pickling() -> None:
    quarantine = pickle.loads(pickle.dumps(QuarantineError("x.fits: truncated", code="truncated")))
    assert (quarantine.reason, quarantine.code, str(quarantine)) == (
        "x.fits: truncated",
        "truncated",
        "x.fits: truncated",
    )
    for kind in (ConfigError, IncompleteBlockError, UnprocessableDataError):
        again = pickle.loads(pickle.dumps(kind("why")))
        assert type(again) is kind and str(again) == "why"
