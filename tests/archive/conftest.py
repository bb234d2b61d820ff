"""Processed workspaces for the review / certification / archive tests: short runs of
test-scale OmegaCAM nights (bias frames, and dome flats where a test needs a cascade)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from qclib.simulate.night import simulate_night
from tests.conftest import NIGHT


def _nights(tmp_path_factory, name: str, count: int, only: set[str], **kwargs) -> list[Path]:
    out = []
    for i in range(count):
        folder = tmp_path_factory.mktemp(f"{name}-{i}")
        simulate_night(
            "OMEGACAM",
            NIGHT + dt.timedelta(days=i),
            folder,
            seed=40 + i,
            scale="test",
            workers=1,
            progress=False,
            only=only,
            **kwargs,
        )
        out.append(folder)
    return out


@pytest.fixture(scope="session")
def bias_nights(tmp_path_factory) -> list[Path]:
    """Four nights of biases (one MASTER_BIAS block each)."""
    return _nights(tmp_path_factory, "bias", 4, {"bias"})


@pytest.fixture(scope="session")
def cascade_nights(tmp_path_factory) -> list[Path]:
    """Two nights of biases and dome flats: MASTER_BIAS -> READ_GAIN, MASTER_DOME_FLAT."""
    return _nights(tmp_path_factory, "cascade", 2, {"bias", "dome_flat"})


@pytest.fixture(scope="session")
def degraded_night(tmp_path_factory) -> Path:
    """One night of biases with a CCD whose read noise is far above the QC.RON limit."""
    (night,) = _nights(
        tmp_path_factory, "degraded", 1, {"bias"}, degrade={"ESO_CCD_#66": {"read_noise_e": 13.0}}
    )
    return night


def fill_inbox(workspace, nights: list[Path]) -> None:
    for i, night in enumerate(nights):
        shutil.copytree(night, workspace.inbox / f"night{i}", dirs_exist_ok=True)
