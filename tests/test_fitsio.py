"""Header-only FITS reading: agrees with astropy, and rejects damaged files with a reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st

from qclib.errors import QuarantineError
from qclib.fitsio import flatten_keyword, parse_cards, parse_value, scan_fits, split_cards


def _astropy_flat(header: fits.Header) -> dict:
    out = {}
    for card in header.cards:
        if card.keyword in ("COMMENT", "HISTORY", "") or card.keyword.startswith("CONTINUE"):
            continue
        out[flatten_keyword(card.keyword)] = card.value
    return out


def test_scan_matches_astropy_on_simulated_mef(omegacam_night: Path) -> None:
    path = sorted(omegacam_night.glob("*.fits"))[0]
    scan = scan_fits(path)
    with fits.open(path) as hdul:
        assert len(scan.hdus) == len(hdul)
        for ours, theirs in zip(scan.hdus, hdul, strict=True):
            expected = _astropy_flat(theirs.header)
            assert ours.header == pytest.approx(expected)
        assert scan.extensions[0].data_offset == hdul[1]._data_offset
    assert scan.primary["DPR.CATG"] == "CALIB"
    assert scan.size_bytes == path.stat().st_size


def test_real_eso_headers_parse_like_astropy(realdata: Path) -> None:
    """The real headers in shared/realdata (up to ~3000 cards, long HIERARCH) agree."""
    files = sorted(realdata.rglob("*.hdr"))
    assert len(files) >= 20
    for path in files:
        header = fits.Header.fromtextfile(path)
        lines = path.read_text().splitlines()
        ours = parse_cards(line.ljust(80) for line in lines)
        theirs = _astropy_flat(header)
        for key, value in theirs.items():
            if isinstance(value, str | bool | int | float):
                assert ours[key] == value, (path.name, key)


def test_long_string_continue_cards() -> None:
    header = fits.Header()
    header["LONGSTR"] = "x" * 150 + "end"
    text = header.tostring()
    assert parse_cards(split_cards(text))["LONGSTR"] == "x" * 150 + "end"


@settings(max_examples=200, deadline=None)
@given(
    value=st.one_of(
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60).map(
            str.rstrip
        ),
        st.integers(min_value=-(2**62), max_value=2**62),
        st.floats(allow_nan=False, allow_infinity=False, width=64),
        st.booleans(),
    )
)
def test_value_round_trip_through_astropy_cards(value) -> None:
    text = str(fits.Card("KEY", value))
    # astropy's reading of the same card; for strings, the value written: astropy 8
    # reads its own card of the string  '/  back as  '  (hypothesis found it).
    expected = value if isinstance(value, str) else fits.Card.fromstring(text).value
    parsed = parse_value(text[10:])
    assert parsed == expected
    assert type(parsed) is type(expected)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(QuarantineError, match="empty file") as info:
        scan_fits(_write(tmp_path, "a.fits", b""))
    assert info.value.code == "empty"


def test_not_fits(tmp_path: Path) -> None:
    with pytest.raises(QuarantineError, match="not a FITS file") as info:
        scan_fits(_write(tmp_path, "a.fits", b"hello world\n" * 500))
    assert info.value.code == "not-fits"


@pytest.mark.parametrize("keep", [100, 2880 * 2 + 17, -1000, -1])
def test_truncated(omegacam_night: Path, tmp_path: Path, keep: int) -> None:
    source = sorted(omegacam_night.glob("*.fits"))[0]
    data = source.read_bytes()
    path = _write(tmp_path, "t.fits", data[:keep])
    with pytest.raises(QuarantineError, match="truncated") as info:
        scan_fits(path)
    assert info.value.code == "truncated"


def test_trailing_garbage_is_corrupt(omegacam_night: Path, tmp_path: Path) -> None:
    source = sorted(omegacam_night.glob("*.fits"))[0]
    path = _write(tmp_path, "g.fits", source.read_bytes() + b"\x00" * 2880)
    with pytest.raises(QuarantineError, match="not a FITS extension") as info:
        scan_fits(path)
    assert info.value.code == "corrupt"


def test_non_ascii_header_is_corrupt(omegacam_night: Path, tmp_path: Path) -> None:
    source = sorted(omegacam_night.glob("*.fits"))[0]
    data = bytearray(source.read_bytes())
    data[85] = 0xE9
    with pytest.raises(QuarantineError, match="non-ASCII") as info:
        scan_fits(_write(tmp_path, "n.fits", bytes(data)))
    assert info.value.code == "corrupt"


def test_bad_bitpix_is_corrupt(tmp_path: Path) -> None:
    hdu = fits.PrimaryHDU(np.zeros((4, 4), dtype=np.int16))
    path = tmp_path / "b.fits"
    hdu.writeto(path)
    data = path.read_bytes().replace(
        b"BITPIX  =                   16", b"BITPIX  =                   12"
    )
    path.write_bytes(data)
    with pytest.raises(QuarantineError, match="BITPIX=12") as info:
        scan_fits(path)
    assert info.value.code == "corrupt"


def test_scan_reads_no_pixels(omegacam_night: Path, tmp_path: Path) -> None:
    """Corrupting pixel bytes does not change what a header scan returns."""
    source = sorted(omegacam_night.glob("*.fits"))[0]
    copy = tmp_path / source.name
    shutil.copy(source, copy)
    before = scan_fits(copy)
    data = bytearray(copy.read_bytes())
    offset = before.extensions[0].data_offset
    data[offset : offset + 1000] = b"\xff" * 1000
    copy.write_bytes(bytes(data))
    assert scan_fits(copy).hdus[1].header == before.hdus[1].header


@pytest.mark.parametrize("step", [1, 3, 4])
def test_sampled_read_is_every_step_th_pixel(omegacam_night: Path, tmp_path: Path, step) -> None:
    from qclib.fitsio import read_image, read_image_sample

    raw = next(omegacam_night.glob("*.fits"))  # int16 + BZERO
    floats = tmp_path / "float.fits"
    data = np.random.default_rng(1).normal(size=(37, 53)).astype(np.float32)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, name="D")]).writeto(floats)
    for path in (raw, floats):
        hdu = scan_fits(path).extensions[0]
        sampled = read_image_sample(path, hdu, step)
        assert sampled.dtype == np.float32 and sampled.dtype.isnative
        np.testing.assert_array_equal(sampled, read_image(path, hdu)[::step, ::step])


@pytest.mark.parametrize(("bscale", "bzero"), [(1.0, 32768.0), (1.0, 0.0), (2.5, -7.0)])
def test_int16_images_read_as_astropy_scales_them(tmp_path: Path, bscale, bzero) -> None:
    """The one-pass conversion of stored big-endian int16 (with BSCALE/BZERO) gives
    what astropy gives, every value of the int16 range included."""
    from qclib.fitsio import read_image

    stored = np.arange(-32768, 32768, dtype=np.int16).reshape(256, 256)
    hdu = fits.ImageHDU(stored, name="D", do_not_scale_image_data=True)
    hdu.header["BSCALE"], hdu.header["BZERO"] = bscale, bzero
    path = tmp_path / "int16.fits"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    with fits.open(path) as hdus:
        expected = hdus["D"].data.astype(np.float32)
    image = read_image(path, scan_fits(path).extensions[0])
    assert image.dtype == np.float32 and image.dtype.isnative
    np.testing.assert_array_equal(image, expected)


def test_read_image_is_astropys_and_refuses_a_file_cut_short(tmp_path: Path) -> None:
    """Pixels are mapped from the file: int16 with BZERO and big-endian float32 read as
    astropy scales them; a file whose data ends early is an error, not a crash."""
    from qclib.fitsio import read_image

    rng = np.random.default_rng(5)
    ints = fits.ImageHDU(rng.integers(0, 65535, (30, 20)).astype(np.uint16), name="A")
    floats = fits.ImageHDU(rng.normal(0, 1, (30, 20)).astype(np.float32), name="B")
    path = tmp_path / "x.fits"
    fits.HDUList([fits.PrimaryHDU(), ints, floats]).writeto(path)
    scan = scan_fits(path)
    with fits.open(path) as hdus:
        for hdu, info in zip(hdus[1:], scan.extensions, strict=True):
            np.testing.assert_array_equal(read_image(path, info), hdu.data.astype(np.float32))
    cut = tmp_path / "cut.fits"
    cut.write_bytes(path.read_bytes()[: scan.extensions[1].data_offset + 100])
    with pytest.raises(ValueError, match="shorter than its header says"):
        read_image(cut, scan.extensions[1])
