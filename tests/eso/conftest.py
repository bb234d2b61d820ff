"""Simulated GIRAFFE frames that ESO's recipes accept, and the check that they can run."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from qclib.eso.pipelines import DATA_PATH_ENV, PLUGIN_PATH_ENV, installed_pipelines
from tests.conftest import missing_dependency


@pytest.fixture(scope="session", autouse=True)
def debian_layout_only() -> Iterator[None]:
    """These tests know Debian's pipelines: folders a user's environment adds are left out."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(PLUGIN_PATH_ENV, raising=False)
        patch.delenv(DATA_PATH_ENV, raising=False)
        yield


#: GIRAFFE's CCD as its recipes read it: one 2148 x 4096 image in the primary HDU.
SHAPE = (4096, 2148)
BIAS_ADU, RON_ADU = 200.0, 4.2  # the level must lie in 100-300 ADU (gimasterbias' QC windows)


def giraffe_biases(folder: Path, n: int = 3) -> list[Path]:
    """``n`` raw biases at ``BIAS_ADU`` with Gaussian read noise ``RON_ADU`` (seeded)."""
    rng = np.random.default_rng(42)
    paths = []
    for i in range(n):
        header = fits.Header()
        header["MJD-OBS"] = 61367.5 + i * 0.001
        header["EXPTIME"] = 0.0
        header["HIERARCH ESO DPR CATG"] = "CALIB"
        header["HIERARCH ESO DPR TYPE"] = "BIAS"
        header["HIERARCH ESO DPR TECH"] = "IMAGE"
        data = (BIAS_ADU + rng.normal(0.0, RON_ADU, SHAPE)).astype(np.float32)
        path = folder / f"GIRAF.bias{i}.fits"
        fits.PrimaryHDU(data, header).writeto(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def esorex_giraffe() -> None:
    """ESO's GIRAFFE pipeline is installed (else a loud skip; a failure under CI=true)."""
    if shutil.which("esorex") is None or "giraf" not in {p.name for p in installed_pipelines()}:
        missing_dependency(
            "ESOREX JOB TESTS SKIPPED: apt-get install esorex cpl-plugin-giraf "
            "('make test' does as root)"
        )
