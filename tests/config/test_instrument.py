"""Instrument configurations load, follow the real instruments, and report errors by file+key."""

from __future__ import annotations

from pathlib import Path

import pytest

from qclib.config.instrument import load_instrument_config, parse_section
from qclib.errors import ConfigError
from qclib.instruments import INSTRUMENTS_DIR, available_instruments, load_instrument


def test_instruments_are_discovered() -> None:
    assert available_instruments() == [
        "GIRAFFE",
        "HAWKI",
        "HAWKI_ESO",
        "MUSE",
        "NACO",
        "OMEGACAM",
        "UVES",
        "VIRCAM",
        "VISIR",
    ]


def test_omegacam_follows_the_real_instrument() -> None:
    omegacam = load_instrument("OMEGACAM")
    assert len(omegacam.detectors) == 32
    assert omegacam.detectors[0].extname == "ESO_CCD_#65"
    assert {d.extname for d in omegacam.detectors} == {f"ESO_CCD_#{n}" for n in range(65, 97)}
    full = omegacam.geometry["full"]
    assert (full.naxis1, full.naxis2) == (2144, 4200)
    assert full.data_shape == (4100, 2048)
    assert omegacam.pixel_scale_arcsec == pytest.approx(0.214)
    assert len(omegacam.layout) == 4 and all(len(row) == 8 for row in omegacam.layout)


def test_hawki_follows_the_real_instrument() -> None:
    hawki = load_instrument("HAWKI")
    # Archive files store the chips in the order 1, 2, 4, 3.
    assert [d.extname for d in hawki.detectors] == [
        "CHIP1.INT1",
        "CHIP2.INT1",
        "CHIP4.INT1",
        "CHIP3.INT1",
    ]
    assert hawki.geometry["full"].naxis1 == hawki.geometry["full"].naxis2 == 2048
    assert hawki.pixel_scale_arcsec == pytest.approx(0.106)
    assert hawki.infrared


def test_parse_section_rejects_garbage() -> None:
    assert parse_section("[1:10, 2:20]") == (slice(1, 20), slice(0, 10))
    for bad in ("1:10,2:20", "[10:1,1:5]", "[0:5,1:5]", "[a:b,c:d]"):
        with pytest.raises(ValueError, match="section"):
            parse_section(bad)


def _broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = (INSTRUMENTS_DIR / "hawki" / "hawki.toml").read_text()
    assert old in text
    path = tmp_path / "hawki.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "phrase"),
    [
        ("pixel_scale_arcsec = 0.106", "pixel_scale_arcsec = -1", "pixel_scale_arcsec"),
        ('data_section = "[5:2044,5:2044]"', 'data_section = "[5:3000,5:2044]"', "outside"),
        ('filter = "J"', 'filter = "Z"', r"has no \[filters\] entry"),
        ('name = "HAWKI"', 'name = "HAWKI"\ncolour = "blue"', "colour"),
        ('name = "HAWKI"', "name = HAWKI", "not valid TOML"),
    ],
)
def test_config_errors_name_the_file_and_key(
    tmp_path: Path, old: str, new: str, phrase: str
) -> None:
    path = _broken_copy(tmp_path, old, new)
    with pytest.raises(ConfigError, match=phrase) as info:
        load_instrument_config(path)
    assert str(path) in str(info.value)


def test_unknown_instrument() -> None:
    with pytest.raises(ConfigError, match="unknown instrument 'FORS9'"):
        load_instrument("FORS9")
