"""Simulated headers follow ESO's conventions: dictionary names and types, real header types."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from astropy.io import fits

from qclib.dictionary import find_entry, parse_dictionary, value_matches_type
from qclib.fitsio import parse_cards, scan_fits
from qclib.frames import _ARCFILE


def _eso_keywords(path: Path) -> dict[str, object]:
    """HIERARCH ESO keywords of every HDU, flattened (DPR.CATG ...)."""
    out: dict[str, object] = {}
    for hdu in scan_fits(path).hdus:
        out.update(hdu.header)
    raw = path.read_bytes()[: 2880 * 40].decode("ascii", "replace")
    names = set(re.findall(r"HIERARCH ESO ([A-Z0-9_\- ]+?) *=", raw))
    return {
        ".".join(n.split()): out[".".join(n.split())] for n in names if ".".join(n.split()) in out
    }


def test_hawki_keywords_match_eso_hawki_dictionaries(hawki_night: Path, realdata: Path) -> None:
    dic = realdata / "debian_cpl_plugins" / "hawki-2.4.11" / "dic"
    entries = []
    for path in dic.glob("ESO-VLT-DIC.HAWKI_*"):
        entries += parse_dictionary(path.read_text(errors="replace"))
    assert len(entries) > 200
    path = sorted(hawki_night.glob("*.fits"))[0]
    keywords = _eso_keywords(path)
    instrument_specific = {k: v for k, v in keywords.items() if k.split(".")[0] in ("INS", "SEQ")}
    assert {"INS.FILT1.NAME", "INS.FILT2.NAME", "SEQ.CUMOFFSETX"} <= set(instrument_specific)
    for key, value in instrument_specific.items():
        entry = find_entry(entries, key)
        assert entry is not None, f"{key} is not in ESO's HAWK-I dictionaries"
        assert value_matches_type(value, entry.type), (key, value, entry.type)


def _real_types(realdata: Path) -> dict[str, set[type]]:
    seen: dict[str, set[type]] = {}
    for path in realdata.rglob("*.hdr"):
        lines = path.read_text(errors="replace").splitlines()
        for key, value in parse_cards(line.ljust(80) for line in lines).items():
            seen.setdefault(key, set()).add(type(value))
    return seen


@pytest.mark.parametrize("night", ["omegacam_night", "hawki_night"])
def test_keywords_shared_with_real_eso_headers_have_their_types(
    night: str, request: pytest.FixtureRequest, realdata: Path
) -> None:
    """Every keyword we write that real ESO headers also carry has the type they give it."""
    folder: Path = request.getfixturevalue(night)
    real = _real_types(realdata)
    path = sorted(folder.glob("*.fits"))[-1]
    primary = scan_fits(path).primary
    shared = [k for k in primary if k in real]
    for required in (
        "DPR.CATG",
        "DPR.TYPE",
        "DPR.TECH",
        "TPL.ID",
        "TPL.START",
        "TPL.EXPNO",
        "TPL.NEXP",
        "OBS.PROG.ID",
        "OBS.ID",
        "ARCFILE",
        "MJD-OBS",
        "DATE-OBS",
        "EXPTIME",
    ):
        assert required in shared, f"{required}: written by us, and present in real headers"
    for key in shared:
        value_type = type(primary[key])
        allowed = real[key] | (
            {int, float} if value_type in (int, float) and real[key] & {int, float} else set()
        )
        assert value_type in allowed, (key, value_type, real[key])


def test_real_arcfiles_follow_the_pattern_ingest_checks(realdata: Path) -> None:
    """Real ESO ARCFILEs are '<prefix>.<timestamp to the ms>.fits', the timestamp near DATE-OBS.

    shared/realdata holds products only; a product keeps its first raw's ARCFILE, so
    its DATE-OBS may differ by seconds. For raw frames the two are the same instant.
    """
    import csv
    import datetime as dt

    with (realdata / "MANIFEST_headers.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    checked = 0
    for row in rows:
        if not row["arcfile"] or not row["date_obs"].startswith(("19", "20")):
            continue
        match = _ARCFILE.match(row["arcfile"])
        if row["arcfile"].startswith("M."):  # master calibrations: another naming scheme
            continue
        assert match is not None, row["arcfile"]
        stamp = dt.datetime.fromisoformat(match["stamp"])
        date_obs = dt.datetime.fromisoformat(row["date_obs"])
        assert abs((date_obs - stamp).total_seconds()) < 15, row["file"]
        checked += 1
    assert checked >= 5


def test_astropy_sees_eso_hierarch_cards(omegacam_night: Path) -> None:
    path = sorted(omegacam_night.glob("*.fits"))[0]
    header = fits.getheader(path)
    assert header["HIERARCH ESO DPR CATG"] == "CALIB"
    assert header["ARCFILE"].startswith("OMEGACAM.")
    ext = fits.getheader(path, 1)
    assert ext["EXTNAME"].startswith("ESO_CCD_#")
    assert ext["HIERARCH ESO DET CHIP ID"] == ext["EXTNAME"].replace("_", "-")
