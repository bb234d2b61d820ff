"""FrameInfo extraction and the header checks a raw frame must pass (pure)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from qclib.errors import QuarantineError
from qclib.fitsio import scan_fits
from qclib.frames import frame_info_from_scan
from qclib.instruments import load_instrument

INSTRUMENTS = {"OMEGACAM": load_instrument("OMEGACAM"), "HAWKI": load_instrument("HAWKI")}


def _with_primary(scan, **changes):
    primary = dataclasses.replace(scan.hdus[0], header={**scan.primary, **changes})
    return dataclasses.replace(scan, hdus=(primary, *scan.hdus[1:]))


@pytest.fixture
def scan(hawki_night: Path):
    return scan_fits(sorted(hawki_night.glob("*.fits"))[0])


def test_frame_info(scan) -> None:
    info = frame_info_from_scan(scan, INSTRUMENTS)
    assert info.instrument == "HAWKI"
    assert info.night.isoformat() == "2026-11-23"
    assert info.filters == "Ks+OPEN"
    assert info.detectors == ("CHIP1.INT1", "CHIP2.INT1", "CHIP4.INT1", "CHIP3.INT1")
    assert info.mid_mjd == pytest.approx(info.mjd_obs + info.exptime_s / 2 / 86400)


@pytest.mark.parametrize(
    ("changes", "code", "phrase"),
    [
        ({"INSTRUME": None}, "missing-keyword", "no INSTRUME"),
        ({"INSTRUME": "VIRCAM"}, "wrong-instrument", "'VIRCAM' is not configured"),
        ({"DET.DIT": None}, "missing-keyword", "DET.DIT"),
        ({"EXPTIME": -5.0}, "mislabelled", "EXPTIME"),
        ({"MJD-OBS": "yesterday"}, "mislabelled", "MJD-OBS is not a number"),
        ({"DATE-OBS": "2026-13-45"}, "mislabelled", "not an ISO date"),
        ({"DATE-OBS": "2026-11-23T17:10:00.000"}, "mislabelled", "disagree"),
        ({"ARCFILE": "HAWKI.2026-11-23T99:00:00.000.fits"}, "mislabelled", "does not match"),
        ({"ARCFILE": "OMEGACAM.2026-11-23T17:00:00.000.fits"}, "mislabelled", "is not 'HAWKI."),
    ],
)
def test_bad_headers_are_rejected_with_a_reason(scan, changes, code, phrase) -> None:
    with pytest.raises(QuarantineError, match=phrase) as info:
        frame_info_from_scan(_with_primary(scan, **changes), INSTRUMENTS)
    assert info.value.code == code


def test_wrong_geometry_is_mislabelled(scan) -> None:
    ext = dataclasses.replace(scan.hdus[1], header={**scan.hdus[1].header, "NAXIS1": 100})
    bad = dataclasses.replace(scan, hdus=(scan.hdus[0], ext, *scan.hdus[2:]))
    with pytest.raises(QuarantineError, match="no HAWKI readout") as info:
        frame_info_from_scan(bad, INSTRUMENTS)
    assert info.value.code == "mislabelled"


def test_workspace_that_takes_only_omegacam_rejects_hawki(scan) -> None:
    with pytest.raises(QuarantineError, match="it takes OMEGACAM"):
        frame_info_from_scan(scan, {"OMEGACAM": INSTRUMENTS["OMEGACAM"]})
