"""Product files in ESO's conventions, written atomically, one detector at a time.

Layout: a primary HDU (no data) with the setup keywords of the first raw input and
``HIERARCH ESO PRO ...`` (CATG, TYPE, REC1 ID / PIPE ID / RAWi NAME,CATG / CALi
NAME,CATG / PARAMi NAME,VALUE, DATANCOM); then, per detector, the image (EXTNAME =
the detector, ``HIERARCH ESO QC ...`` in its header), its 1-sigma uncertainty
(``<det>.ERR``) and data-quality flags (``<det>.DQ``, bits below), the three with
ESO's HDUCLASS cards naming each other (an image alone: a weight map); last a
``PROVENANCE`` table with every input's SHA-256 (too long for a header card), the
recipe parameters, the configuration hash and the qclib version. Every HDU carries
CHECKSUM/DATASUM. Memory holds one detector at a time.

Every detector's HDUs have the same size: each header is padded with blank cards to a
fixed number of blocks (``DETECTOR_HEADER_BLOCKS``), whatever QC values it holds, and
the detectors of a product share one shape. So detector ``i`` starts at a known
offset (the primary's size plus ``i`` detectors), and several tasks write one
product's detectors in place, each its own byte range of one file
(``write_product_part``), which ``finish_product`` hashes and renames: no task copies
or rewrites another's bytes, and the file is byte for byte the one a single task
writes (``write_product``).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A BinTableHDU's constructor imports astropy.table at its first call (78 ms here): with
# this module, so that no block a worker runs pays it inside its recipe.
import astropy.table  # noqa: F401
import numpy as np
from astropy.io import fits

from qclib import __version__, fits_checksum
from qclib.atomicfile import atomic_path, commit_file, note_writing
from qclib.direct_file import DirectFile, sha256_of
from qclib.stored_pixels import store_big_endian

#: Raw keywords copied to products (the setup a product is matched on).
_COPIED_PREFIXES = ("INS.", "DET.", "TEL.", "OBS.", "TPL.")
_COPIED = ("INSTRUME", "TELESCOP", "ORIGIN", "MJD-OBS", "DATE-OBS", "EXPTIME", "OBJECT")


@dataclass(frozen=True)
class Input:
    """A raw frame or calibration a product was made from."""

    name: str
    category: str
    sha256: str
    role: str  # "raw" or "calib"


@dataclass(frozen=True)
class ProductSpec:
    """Everything about a product except its pixels."""

    pro_catg: str
    recipe: str
    instrument: str
    raw_header: Mapping[str, Any]  # flattened primary header of the first raw input
    inputs: tuple[Input, ...]
    parameters: Mapping[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    pro_type: str = "REDUCED"
    primary_cards: Mapping[str, tuple[Any, str]] = field(default_factory=dict)
    """Standard cards of the primary header after the raw's (Phase 3 keywords): they
    replace a copied card of the same name (a coadd's EXPTIME is its total)."""

    @property
    def raws(self) -> list[Input]:
        return [i for i in self.inputs if i.role == "raw"]

    @property
    def calibs(self) -> list[Input]:
        return [i for i in self.inputs if i.role == "calib"]


@dataclass(frozen=True)
class DetectorProduct:
    """One detector's product pixels and QC parameters."""

    extname: str
    data: np.ndarray | None  # None: QC only (a header-only extension, e.g. gain)
    error: np.ndarray | None
    dq: np.ndarray | None
    qc: Mapping[str, tuple[float | int | None, str]]  # name -> (value, comment)
    unit: str = "adu"
    cards: Mapping[str, tuple[Any, str]] = field(default_factory=dict)
    """Other cards of the image's header, as they are (a coadd's WCS)."""


def setup_header(raw_header: Mapping[str, Any]) -> dict[str, Any]:
    """The keywords of a raw header a product keeps (flattened names)."""
    return {k: v for k, v in raw_header.items() if k in _COPIED or k.startswith(_COPIED_PREFIXES)}


def _set(header: fits.Header, key: str, value: Any, comment: str = "") -> None:
    """Set a card, dropping its comment (never its value) when the card would not fit."""
    if comment:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            image = str(fits.Card(key, value, comment))
        # astropy truncates a comment that does not fit (the card stays 80 characters):
        # then the card no longer ends with the whole comment.
        if len(image) > 80 or not image.rstrip().endswith("/ " + comment.strip()):
            comment = ""
    header[key] = (value, comment)


def _card_key(flat: str) -> str:
    if flat in _COPIED:
        return flat
    return "HIERARCH ESO " + flat.replace(".", " ")


def primary_header(spec: ProductSpec, filename: str) -> fits.Header:
    """The primary header of a product."""
    header = fits.Header()
    for key, value in setup_header(spec.raw_header).items():
        if isinstance(value, str) and len(value) > 40:
            continue  # would not fit one HIERARCH card; the raw keeps it
        _set(header, _card_key(key), value)
    _set(header, "PIPEFILE", filename, "product file name")
    for key, (value, comment) in spec.primary_cards.items():
        _set(header, key, value, comment)
    # No DATE card: a product is byte-reproducible (same inputs, configuration and
    # qclib version give the same SHA-256, so a re-run after a crash can be checked);
    # when it was made is in the database (products.created_at).
    eso = {
        "PRO CATG": (spec.pro_catg, "category of the product"),
        "PRO TYPE": (spec.pro_type, "product type"),
        "PRO DATANCOM": (len(spec.raws), "number of raw frames combined"),
        "PRO REC1 ID": (spec.recipe, "recipe"),
        "PRO REC1 PIPE ID": (f"qclib/{__version__}", "pipeline (QC Workbench)"),
    }
    for i, raw in enumerate(spec.raws, 1):
        eso[f"PRO REC1 RAW{i} NAME"] = (raw.name, "raw input")
        eso[f"PRO REC1 RAW{i} CATG"] = (raw.category, "its category")
    for i, cal in enumerate(spec.calibs, 1):
        eso[f"PRO REC1 CAL{i} NAME"] = (cal.name, "calibration input")
        eso[f"PRO REC1 CAL{i} CATG"] = (cal.category, "its category")
    for i, (name, value) in enumerate(sorted(spec.parameters.items()), 1):
        eso[f"PRO REC1 PARAM{i} NAME"] = (name, "recipe parameter")
        eso[f"PRO REC1 PARAM{i} VALUE"] = (str(value), "its value")
    for key, (value, comment) in eso.items():
        _set(header, f"HIERARCH ESO {key}", value, comment)
    return header


def provenance_table(spec: ProductSpec) -> fits.BinTableHDU:
    names = [i.name for i in spec.inputs]
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column("ROLE", "8A", array=np.array([i.role for i in spec.inputs])),
            fits.Column("CATG", "40A", array=np.array([i.category for i in spec.inputs])),
            fits.Column("NAME", "80A", array=np.array(names)),
            fits.Column("SHA256", "64A", array=np.array([i.sha256 for i in spec.inputs])),
        ],
        name="PROVENANCE",
    )
    _set(
        table.header, "PARAMS", json.dumps(dict(spec.parameters), sort_keys=True, default=str)[:68]
    )
    _set(table.header, "CFGHASH", spec.config_hash[:64], "sha256 of the instrument config")
    _set(table.header, "QCLIBVER", __version__, "qclib version")
    return table


def qc_card(name: str) -> str:
    """``QC.MASTER.BIAS.MEDIAN`` -> ``HIERARCH ESO QC MASTER BIAS MEDIAN``."""
    return "HIERARCH ESO " + name.replace(".", " ")


class _HduWriter:
    """Writes HDUs to one ``DirectFile`` (page cache bypassed, hashed on the way).

    astropy's ``fits.append`` reopens the file and re-verifies every HDU already in it
    on each call: 13 of the 36 s of a 32-CCD master bias (97 HDUs) went there. Images
    are converted to big-endian in one buffer reused from HDU to HDU, their checksums
    summed in the same pass (``stored_pixels.store_big_endian``): a fresh big-endian
    copy per image, as astropy makes, cost 50 ms per 34 MB on this kind of VM.
    """

    def __init__(self, handle: DirectFile) -> None:
        self.handle = handle
        self._scratch = np.empty(0, np.uint8)

    def image(self, hdu: fits.PrimaryHDU | fits.ImageHDU, blocks: int | None = None) -> None:
        """Write an image HDU; ``blocks``: its header padded to that many blocks."""
        header, data = hdu.header, hdu.data
        stored = None
        datasum = 0
        if data is not None:
            if self._scratch.nbytes < data.nbytes:
                self._scratch = np.empty(data.nbytes, np.uint8)
            stored = self._scratch[: data.nbytes]
            datasum = fits_checksum.fold(store_big_endian(data, stored))
        header["CHECKSUM"] = (fits_checksum.ZERO_CHECKSUM, _CHECKSUM_COMMENT)
        header["DATASUM"] = (str(datasum), _CHECKSUM_COMMENT)
        text = _header_bytes(header, blocks)
        total = fits_checksum.fold(fits_checksum.ones_complement_sum(text) + datasum)
        header["CHECKSUM"] = fits_checksum.encode(total)
        self.handle.write(_header_bytes(header, blocks))
        if stored is not None:
            self.handle.write(memoryview(stored))
            self.handle.write(bytes(-stored.nbytes % _BLOCK))

    def table(self, hdu: fits.BinTableHDU) -> None:
        self.handle.write(_table_bytes(hdu))


def _header_bytes(header: fits.Header, blocks: int | None) -> bytes:
    """A header's bytes; ``blocks``: blank cards before END fill that many blocks.

    Raises
    ------
    ValueError
        The header's cards do not fit.
    """
    if blocks is None:
        return header.tostring().encode("ascii")
    cards = header.tostring(endcard=False, padding=False)
    room = blocks * _BLOCK - _CARD
    if len(cards) > room:
        raise ValueError(
            f"header of {header.get('EXTNAME', 'an HDU')}: {len(cards) // _CARD} cards, "
            f"more than the {room // _CARD} a detector header holds "
            "(products.DETECTOR_HEADER_BLOCKS)"
        )
    return (cards + " " * (room - len(cards)) + "END".ljust(_CARD)).encode("ascii")


def _table_bytes(hdu: fits.BinTableHDU) -> bytes:
    """A (small) table HDU's bytes, laid out by astropy, with its checksum."""
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buffer)
    table = fits.open(io.BytesIO(buffer.getvalue()))[1]
    table.add_checksum(when=_CHECKSUM_COMMENT)
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(buffer)
    return buffer.getvalue()[_BLOCK:]


_BLOCK = 2880
_CARD = 80
#: Blocks of each detector HDU header (36 cards a block): the image's holds its QC
#: values (the largest today, a zeropoint's, about 40 cards), the uncertainty's and
#: the flags' about 20 (with the HDUCLASS cards).
DETECTOR_HEADER_BLOCKS = {"image": 4, "error": 1, "dq": 1}
#: astropy's default CHECKSUM comment holds the time of writing: products would differ
#: from run to run. Products are byte-reproducible (tested), so the comment is fixed.
_CHECKSUM_COMMENT = "HDU checksum"


def write_product(
    path: str | os.PathLike[str],
    spec: ProductSpec,
    detectors: Iterable[DetectorProduct],
    tables: Callable[[], Sequence[fits.BinTableHDU]] = tuple,
) -> str:
    """Write a product atomically (detector by detector); returns its SHA-256.

    ``tables``: called once the detectors are written (their iterator may fill what it
    returns), the product's binary tables, written before its PROVENANCE table."""
    path = Path(path)
    with atomic_path(path, readonly=True) as tmp, DirectFile(tmp) as handle:
        writer = _HduWriter(handle)
        writer.image(_primary(spec, path.name))
        for det in detectors:
            _write_detector(writer, _detector_hdus(det))
        for table in tables():
            writer.table(table)
        writer.table(provenance_table(spec))
    return handle.hexdigest()


@dataclass(frozen=True)
class ProductPart:
    """One task's share of a product: its detectors ``first`` to ``first + count - 1``,
    written by task ``index`` of ``tasks`` into ``part_file(product)``."""

    product: Path
    index: int
    tasks: int
    first: int
    count: int


def write_product_part(
    part: ProductPart, spec: ProductSpec, detectors: Iterable[DetectorProduct]
) -> tuple[int, int]:
    """Write one task's detectors of a product in place, into the file all its tasks
    share; returns the byte range written (``finish_product`` checks that the ranges
    tile the file). The first task also writes the primary HDU, the last the
    PROVENANCE table; the file is not hashed here.

    Raises
    ------
    ValueError
        The task's detectors are not all of one size, or not ``part.count`` of them.
    """
    path = part_file(part.product)
    path.parent.mkdir(parents=True, exist_ok=True)
    note_writing(path.parent)
    primary = _primary(spec, part.product.name)
    primary_size = len(_header_bytes(primary.header, None))
    start, size, written = 0, 0, 0
    with contextlib.ExitStack() as stack:
        writer: _HduWriter | None = None
        for det in detectors:
            hdus = _detector_hdus(det)
            if writer is None:
                size = _detector_size(hdus)
                start = 0 if part.index == 0 else primary_size + part.first * size
                handle = stack.enter_context(DirectFile(path, offset=start, hashed=False))
                writer = _HduWriter(handle)
                if part.index == 0:
                    writer.image(primary)
            elif _detector_size(hdus) != size:
                raise ValueError(
                    f"{part.product.name}: detector {det.extname} is {_detector_size(hdus)} "
                    f"bytes, the first of its part {size}: a product's detectors are written "
                    "in place only when they are all of one size"
                )
            _write_detector(writer, hdus)
            written += 1
        if writer is None or written != part.count:
            raise ValueError(
                f"{part.product.name}: {written} detectors made for a part of {part.count}"
            )
        if part.index == part.tasks - 1:
            writer.table(provenance_table(spec))
        end = handle.tell()
    return start, end


def finish_product(product: str | os.PathLike[str], extents: Sequence[tuple[int, int]]) -> str:
    """The product its tasks wrote in place (``write_product_part``), hashed, made
    durable and read-only, and renamed to ``product``; returns its SHA-256.

    Raises
    ------
    ValueError
        The tasks' byte ranges do not tile one file from its first byte (they laid
        the detectors out differently): nothing is renamed.
    """
    product = Path(product)
    path = part_file(product)
    ordered = sorted(extents)
    gaps = [(a, b) for (_, a), (b, _) in itertools.pairwise(ordered) if a != b]
    if not ordered or ordered[0][0] != 0 or gaps:
        raise ValueError(
            f"{product.name}: its tasks wrote bytes {ordered}, which do not follow each "
            "other from the start of the file"
        )
    os.truncate(path, ordered[-1][1])  # nothing of an earlier attempt beyond the end
    sha = sha256_of(path)
    commit_file(path, product, readonly=True)
    return sha


def _primary(spec: ProductSpec, filename: str) -> fits.PrimaryHDU:
    primary = fits.PrimaryHDU(header=primary_header(spec, filename))
    primary.header["EXTEND"] = True
    primary.header["CHECKSUM"] = (fits_checksum.ZERO_CHECKSUM, _CHECKSUM_COMMENT)
    primary.header["DATASUM"] = ("0", _CHECKSUM_COMMENT)
    return primary


def _detector_hdus(det: DetectorProduct) -> list[tuple[fits.ImageHDU, int]]:
    """A detector's image (QC values in its header), uncertainty and flags, each with
    its header's size in blocks; an image without either (a weight map) stands alone.

    The three carry ESO's HDUCLASS cards (the DICD's data/error/quality triplet):
    ``HDUCLAS2`` says which is which, ``ERRDATA``/``QUALDATA``/``SCIDATA`` name the
    others, so a reader of ESO products finds them without knowing this layout."""
    data = None if det.data is None else np.asarray(det.data, dtype=np.float32)
    image = fits.ImageHDU(data, name=det.extname)
    if data is not None:
        image.header["BUNIT"] = det.unit
    for key, (value, comment) in det.cards.items():
        image.header[key] = (value, comment)
    blocks = DETECTOR_HEADER_BLOCKS
    if data is None or (det.error is None and det.dq is None):
        _qc_cards(image.header, det)
        return [(image, blocks["image"])]
    err_name, dq_name = f"{det.extname}.ERR", f"{det.extname}.DQ"
    _hduclass(image.header, "DATA", ERRDATA=err_name, QUALDATA=dq_name)
    _qc_cards(image.header, det)
    error = fits.ImageHDU(np.asarray(det.error, dtype=np.float32), name=err_name)
    error.header["BUNIT"] = det.unit
    _hduclass(error.header, "ERROR", SCIDATA=det.extname, QUALDATA=dq_name)
    error.header["HDUCLAS3"] = ("RMSE", "the uncertainty is a 1-sigma error")
    dq = fits.ImageHDU(np.asarray(det.dq, dtype=np.uint8), name=dq_name)
    _hduclass(dq.header, "QUALITY", SCIDATA=det.extname, ERRDATA=err_name)
    dq.header["COMMENT"] = "bits: 1 hot, 2 cold, 4 no data, 8 saturated"
    return [(image, blocks["image"]), (error, blocks["error"]), (dq, blocks["dq"])]


def _qc_cards(header: fits.Header, det: DetectorProduct) -> None:
    for name, (value, comment) in det.qc.items():
        if value is not None and np.isfinite(value):
            _set(header, qc_card(name), value, comment)


def _hduclass(header: fits.Header, kind: str, **others: str) -> None:
    """ESO's HDU classification of one of a data/error/quality triplet."""
    header["HDUCLASS"] = ("ESO", "class name (ESO format)")
    header["HDUDOC"] = ("DICD", "document with class description")
    header["HDUVERS"] = ("DICD version 6", "version number")
    header["HDUCLAS1"] = ("IMAGE", "image data format")
    header["HDUCLAS2"] = (kind, "this extension holds the " + kind.lower())
    for key, extname in others.items():
        header[key] = (extname, "its companion extension")


def _detector_size(hdus: list[tuple[fits.ImageHDU, int]]) -> int:
    """Bytes a detector's HDUs take in the file."""
    data = sum(-(-(0 if h.data is None else h.data.nbytes) // _BLOCK) for h, _ in hdus)
    return (sum(blocks for _, blocks in hdus) + data) * _BLOCK


def _write_detector(writer: _HduWriter, hdus: list[tuple[fits.ImageHDU, int]]) -> None:
    for hdu, blocks in hdus:
        writer.image(hdu, blocks)


#: The file a product's tasks write in place (``.part-<product name>``): a pass removes
#: those a killed run left (it holds the workspace lock, so none is live).
PART_PREFIX = ".part-"


def part_file(product: str | os.PathLike[str]) -> Path:
    """Where the tasks sharing ``product`` write it before ``finish_product``."""
    product = Path(product)
    return product.with_name(f"{PART_PREFIX}{product.name}")
