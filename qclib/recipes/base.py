"""What a recipe gets (a RecipeContext) and gives back (ProductResults)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from qclib.associate import AssociationBlock
from qclib.calib.stats import clipped_stats
from qclib.config.instrument import Geometry, InstrumentConfig, parse_section
from qclib.errors import IncompleteBlockError, UnprocessableDataError
from qclib.fitsio import FitsScan, HDUInfo, map_image, map_stored, read_image, scan_fits
from qclib.previews import DetectorPreview, make_preview, write_previews
from qclib.products import (
    DetectorProduct,
    Input,
    ProductPart,
    ProductSpec,
    finish_product,
    part_file,
    setup_header,
    write_product,
    write_product_part,
)
from qclib.qc.measures import measure_catalogue
from qclib.recipes.ordered_threads import detector_threads, in_order
from qclib.recipes.registry import RecipeSpec
from qclib.stored_pixels import MappedImage, StoredImage, StoredStack

if TYPE_CHECKING:
    from astropy.io import fits

T = TypeVar("T")


@dataclass(frozen=True)
class RawInput:
    """One raw frame of the block, with its scanned structure (no pixels read yet)."""

    arcfile: str
    path: Path
    category: str
    sha256: str
    scan: FitsScan


@dataclass(frozen=True)
class CalibInput:
    """One calibration product chosen for the block."""

    tag: str
    category: str
    path: Path
    sha256: str


@dataclass(frozen=True)
class DetectorShare:
    """The detectors task ``index`` of a block's ``tasks`` makes: ``detectors``, from
    the block's detector ``first`` on."""

    index: int
    tasks: int
    first: int
    detectors: tuple[str, ...]


@dataclass(frozen=True)
class RecipeContext:
    """Everything a recipe's ``run`` needs; built by the workflow."""

    instrument: InstrumentConfig
    block: AssociationBlock
    spec: RecipeSpec
    """The recipe that runs: its declared inputs are all it may ask for."""
    parameters: Any
    """Its parameters (``spec.parameters``, from the instrument's ``[recipes.<name>]``)."""
    raws: tuple[RawInput, ...]
    calibrations: Mapping[str, tuple[CalibInput, ...]]
    product_dir: Path
    config_hash: str
    min_frames: int = 1
    """Raw frames the block must have: the plan's ``[association.min_frames]`` of its
    action, at least the recipe's ``min_raws``."""
    catalogues: Path = Path("data/catalogues")
    """Folder of reference catalogues (standard fields), ``<OBJECT>.csv``."""
    references: Mapping[str, Path] = field(default_factory=dict)
    """The product each category is compared with (QC '... difference to reference'):
    the newest earlier certified (else any earlier) product of the same setup."""
    part: DetectorShare | None = None
    """This task makes these detectors of the block's products, in place (see
    ``split_detectors``); None: all of them."""

    @property
    def block_id(self) -> str:
        return self.block.id

    def product_path(self, pro_catg: str) -> Path:
        return self.product_dir / f"{self.block.id}_{pro_catg}.fits"

    def output_path(self, pro_catg: str) -> Path:
        """Where this task writes a product: the product, or the file its tasks share."""
        path = self.product_path(pro_catg)
        return path if self.part is None else part_file(path)

    def split_detectors(self, tasks: int) -> list[RecipeContext]:
        """Contexts for up to ``tasks`` tasks, each making the block's products for a
        run of consecutive detectors, in place (``products.write_product_part``);
        ``[self]`` for one, and where the raws' detectors differ in shape (their
        products' detectors would differ in size, so none has a known offset).

        Raises
        ------
        UnprocessableDataError
            The raws do not hold the same detectors.
        """
        detectors = self.detectors()
        tasks = max(1, min(tasks, len(detectors)))
        shapes = {
            (h.header.get("NAXIS1"), h.header.get("NAXIS2"))
            for h in self.raws[0].scan.extensions
            if h.extname in detectors
        }
        if tasks == 1 or len(shapes) > 1:
            return [self]
        bounds = np.linspace(0, len(detectors), tasks + 1).round().astype(int)
        return [
            dataclasses.replace(
                self,
                part=DetectorShare(i, tasks, int(lo), tuple(detectors[lo:hi])),
            )
            for i, (lo, hi) in enumerate(itertools.pairwise(bounds))
        ]

    def raws_of(self, category: str | None = None) -> tuple[RawInput, ...]:
        """The raw inputs (of one category), in time order."""
        chosen = [r for r in self.raws if category is None or r.category == category]
        return tuple(sorted(chosen, key=lambda r: r.arcfile))

    def require_setup(self, pro_catg: str, raws: Sequence[RawInput], what: str) -> None:
        """Refuse raws that differ in any keyword of the product's setup (instrument
        TOML ``[setups]``): one product is made for one setup.

        Raises
        ------
        UnprocessableDataError
            Naming the keyword and the values found.
        """
        for key in self.instrument.setup_keys(pro_catg):
            values = {r.scan.primary.get(key) for r in raws}
            if len(values) > 1:
                shown = ", ".join(sorted(map(str, values)))
                raise UnprocessableDataError(
                    f"{what} frames of mixed {key} ({shown}); one block must share one setup"
                )

    def exposure_time(self, raw: RawInput) -> float:
        """Seconds of light the raw's ADU are counted over (the instrument's
        ``exposure_time_keyword``: EXPTIME, or the DIT of arrays read NDIT times).

        Raises
        ------
        UnprocessableDataError
            The raw lacks it.
        """
        try:
            return self.instrument.exposure_time(raw.scan.primary)
        except ValueError as err:
            raise UnprocessableDataError(f"{raw.arcfile}: {err}") from None

    def ndit(self, raw: RawInput) -> int:
        """Reads combined into the raw (1 where the instrument has no NDIT)."""
        return self.instrument.ndit(raw.scan.primary)

    def each_detector(self, make: Callable[[str], T]) -> Iterator[T]:
        """``make(extname)`` of each detector, handed on in detector order, made on as
        many threads as this process has cores for (``ordered_threads``): ``make``
        reads through a ``stack_reader`` (a stack per thread) or into new arrays, and
        returns new arrays."""
        return in_order(make, self.detectors(), detector_threads())

    def made_per_detector(
        self,
        make: Callable[[str], tuple[dict[str, float], DetectorProduct]],
        qc: dict[str, dict[str, float]],
    ) -> Iterator[DetectorProduct]:
        """Each detector's product, ``make(extname)`` returning its QC values and its
        product (``each_detector``); ``qc`` gets the values as they are handed on."""
        for values, product in self.each_detector(make):
            qc[product.extname] = values
            yield product

    def stack_reader(self, raws: Sequence[RawInput]) -> StackReader:
        """Reads one detector of ``raws`` at a time, each as the mean of its reads."""
        scales = [self.instrument.per_read_scale(r.scan.primary) for r in raws]
        return StackReader(raws, self.geometry(), scales)

    def raw_reader(self, calib: CalibInput) -> CalibrationReader:
        """Reads a raw frame chosen as a calibration (a bias or flat pair, darks of
        other DITs), as the mean of its reads."""
        reader = CalibrationReader(calib)
        reader.scale = self.instrument.per_read_scale(reader.scan.primary)
        return reader

    def calibrations_for(self, role: str) -> tuple[CalibInput, ...]:
        """Every calibration chosen for one of the recipe's declared inputs (by any of
        its tags); empty when none was."""
        for tag in self.spec.input(role).tags:
            if self.calibrations.get(tag):
                return tuple(self.calibrations[tag])
        return ()

    def calibration(self, role: str) -> CalibInput:
        """The calibration chosen for a declared input.

        Raises
        ------
        IncompleteBlockError
            None was associated.
        """
        chosen = self.calibrations_for(role)
        if not chosen:
            tags = " or ".join(self.spec.input(role).tags)
            raise IncompleteBlockError(f"{self.block_id}: no {tags} was associated")
        return chosen[0]

    def geometry(self) -> Geometry:
        """The readout geometry of the raws (all must share one)."""
        shapes = set()
        for raw in self.raws:
            for hdu in raw.scan.extensions:
                shapes.add((hdu.header.get("NAXIS1"), hdu.header.get("NAXIS2")))
        for geometry in self.instrument.geometry.values():
            if shapes == {(geometry.naxis1, geometry.naxis2)}:
                return geometry
        raise UnprocessableDataError(
            f"{self.block.id}: raw frames of mixed or unknown sizes {sorted(shapes, key=str)}"
        )

    def detectors(self) -> list[str]:
        """Detector EXTNAMEs present in every raw, in extension order of the first."""
        names = [[h.extname for h in r.scan.extensions if h.extname] for r in self.raws]
        common = [n for n in names[0] if all(n in other for other in names[1:])]
        if len(common) != len(names[0]) or any(len(n) != len(names[0]) for n in names):
            raise UnprocessableDataError(f"{self.block.id}: raws hold different detectors")
        if self.part is not None:
            return list(self.part.detectors)
        return [n for n in common if n is not None]


@dataclass(frozen=True)
class ProductResult:
    """A product a recipe wrote."""

    pro_catg: str
    path: Path
    sha256: str
    qc: dict[str, dict[str, float]]  # detector -> QC name -> value
    header: dict[str, Any]  # setup keywords (what association matches on)
    parameters: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    """Detector -> why it has no QC values (e.g. no standard star could be measured)."""
    extent: tuple[int, int] | None = None
    """A task's share of a product written in place: the bytes it wrote (no SHA-256
    yet: ``finish_parts`` hashes the whole); None for a whole product."""
    previews: tuple[DetectorPreview, ...] = ()
    """A task's share: the previews of its detectors (``finish_parts`` keeps them
    with the product); a whole product's are kept when it is written."""
    units: dict[str, str] = field(default_factory=dict)
    """QC name -> unit, for values the instrument's catalogue (``qc``) lacks: those
    harvested from ESO's products, with the unit of ESO's dictionary."""


def _refuse_unmeasured(result: ProductResult) -> None:
    """A product whose every detector failed to be measured is no product.

    Raises
    ------
    UnprocessableDataError
        With each detector's reason; the file is removed.
    """
    if result.problems and not result.qc:
        result.path.unlink(missing_ok=True)
        reasons = "; ".join(f"{k}: {v}" for k, v in sorted(result.problems.items()))
        raise UnprocessableDataError(f"no detector of {result.pro_catg} was measured ({reasons})")


class StackReader:
    """Reads one detector of many raws into a stack reused by each thread (fresh memory
    is slow to touch on this kind of VM: ~2 s per GB): what ``read`` returns stays
    valid until the same thread reads again."""

    def __init__(
        self, raws: Sequence[RawInput], geometry: Geometry, scales: Sequence[float] | None = None
    ) -> None:
        self.raws = tuple(raws)
        self.scales = None if scales is None or all(s == 1 for s in scales) else list(scales)
        self._shape = (len(raws), geometry.naxis2, geometry.naxis1)
        self._local = threading.local()

    def read_stored(self, extname: str) -> StoredStack | None:
        """The detector of every raw as FITS stores it, mapped in place (nothing is
        read until a kernel uses it); None unless every raw stores it alike, as int16
        or as unscaled float32 (``fitsio.map_stored``), and none is scaled to a mean of
        reads (then ``read``)."""
        if self.scales is not None:
            return None
        images = []
        for raw in self.raws:
            image = map_stored(raw.path, _extension(raw, extname))
            if image is None:
                return None
            images.append(image)
        if len({type(image) for image in images}) > 1:
            return None
        return StoredStack(tuple(images))

    def mapped(self, extname: str) -> list[StoredImage | MappedImage]:
        """The detector of every raw mapped in place, each indexed into physical values
        (the mean of its reads) of just the part taken: for statistics of a sample, bit
        for bit what ``read`` gives there."""
        scales = self.scales or [1.0] * len(self.raws)
        images = []
        for raw, scale in zip(self.raws, scales, strict=True):
            hdu = _extension(raw, extname)
            images.append(map_image(raw.path, hdu, scale=scale))
        return images

    def read(self, extname: str) -> np.ndarray:
        local = self._local
        if not hasattr(local, "stack"):
            local.stack = np.empty(self._shape, np.float32)
        for i, raw in enumerate(self.raws):
            hdu = _extension(raw, extname)
            read_image(raw.path, hdu, out=local.stack[i])
            if self.scales is not None:
                local.stack[i] *= np.float32(self.scales[i])
        return local.stack


def _extension(raw: RawInput, extname: str) -> HDUInfo:
    """The image HDU of a raw's detector."""
    return next(h for h in raw.scan.extensions if h.extname == extname)


class CalibrationReader:
    """Reads detector images (data, DQ) of a calibration product, by EXTNAME."""

    def __init__(self, calib: CalibInput, scale: float = 1.0) -> None:
        self.calib = calib
        self.scan = scan_fits(calib.path)
        self.scale = scale

    def _hdu(self, name: str):  # type: ignore[no-untyped-def]
        for hdu in self.scan.extensions:
            if hdu.extname == name:
                return hdu
        raise UnprocessableDataError(
            f"calibration {self.calib.path.name} has no extension {name}: "
            "it was made from other detectors"
        )

    def data(self, extname: str) -> np.ndarray:
        image = read_image(self.calib.path, self._hdu(extname))
        if self.scale != 1:
            image *= np.float32(self.scale)
        return image

    def mapped(self, extname: str) -> StoredImage | MappedImage:
        """``data(extname)`` mapped in place: indexing converts only the part taken."""
        return map_image(self.calib.path, self._hdu(extname), scale=self.scale)

    def dq(self, extname: str) -> np.ndarray:
        return read_image(self.calib.path, self._hdu(f"{extname}.DQ")).astype(np.uint8)

    def header_value(self, key: str) -> Any:
        return self.scan.primary.get(key)


def data_view(stack: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The data sections of a stack (frames, ny, nx): a view, no copy."""
    rows, cols = parse_section(geometry.data_section)
    return stack[:, rows, cols]


def nominal_gain(scan: FitsScan, extname: str) -> float | None:
    """The conversion factor (e-/ADU) a raw file's detector extension states, if any."""
    hdu = next((h for h in scan.extensions if h.extname == extname), None)
    value = None if hdu is None else hdu.header.get("DET.OUT1.CONAD")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def qc_cards(
    instrument: InstrumentConfig, pro_catg: str, qc: Mapping[str, float]
) -> dict[str, tuple[float | int | None, str]]:
    """QC values with their header comments (unit and meaning from the instrument TOML)."""
    known = instrument.qc.get(pro_catg, {})
    return {
        name: (value, f"[{known[name].unit}] {known[name].description}" if name in known else "")
        for name, value in qc.items()
    }


def _measured(
    ctx: RecipeContext,
    pro_catg: str,
    detectors: Iterable[DetectorProduct],
    qc: dict[str, dict[str, float]],
) -> Iterator[DetectorProduct]:
    """Each detector with the catalogue's generic QC parameters (instrument TOML), for a
    master calibration with a predecessor its difference to it (QC.REFDIFF.*), and its
    values under the instrument's names (a catalogue entry's ``source``)."""
    catalogue = ctx.instrument.qc.get(pro_catg, {})
    renames = {p.source: name for name, p in catalogue.items() if p.source is not None}
    reference = ctx.references.get(pro_catg)
    reader = (
        CalibrationReader(CalibInput("REFERENCE", pro_catg, reference, ""))
        if reference is not None
        else None
    )
    for det in detectors:
        values: dict[str, float] = {}
        if det.data is not None:
            planes = {"data": det.data, "error": det.error, "dq": det.dq}
            if reader is not None and det.extname in {h.extname for h in reader.scan.extensions}:
                previous = reader.data(det.extname)
                # A reference of another geometry (a detector re-windowed, or a test-size
                # master beside full-size ones) cannot be compared pixel by pixel.
                if previous.shape == det.data.shape:
                    planes["difference"] = det.data - previous
                    with np.errstate(divide="ignore", invalid="ignore"):
                        planes["ratio"] = np.where(previous != 0, det.data / previous, np.nan)
                    values["QC.REFDIFF.MED"] = float(np.nanmedian(planes["difference"]))
                    values["QC.REFDIFF.RMS"] = clipped_stats(planes["difference"], sigma=5).std
            values.update(measure_catalogue(catalogue, planes))
        if not values and not renames.keys() & det.qc.keys():
            yield det
            continue
        merged = {renames.get(k, k): v for k, v in {**qc.get(det.extname, {}), **values}.items()}
        qc[det.extname] = merged
        cards = {renames.get(k, k): card for k, card in det.qc.items()}
        yield dataclasses.replace(det, qc={**cards, **qc_cards(ctx.instrument, pro_catg, merged)})


def _previewed(
    detectors: Iterable[DetectorProduct], previews: list[DetectorPreview]
) -> Iterator[DetectorProduct]:
    """The detectors, each image's preview added to ``previews`` as it passes."""
    for det in detectors:
        if det.data is not None:
            previews.append(make_preview(det.extname, det.data, det.unit))
        yield det


def write(
    ctx: RecipeContext,
    pro_catg: str,
    detectors: Iterable[DetectorProduct],
    *,
    raws: Sequence[RawInput],
    calibs: Sequence[CalibInput] = (),
    parameters: Mapping[str, Any] | None = None,
    qc: dict[str, dict[str, float]] | None = None,
    problems: dict[str, str] | None = None,
    pro_type: str = "REDUCED",
    tables: Callable[[], Sequence[fits.BinTableHDU]] = tuple,
    primary_cards: Mapping[str, tuple[Any, str]] | None = None,
) -> ProductResult:
    """Write one product (detector by detector, atomically) and describe it.

    ``qc`` (and ``problems``: detector -> why it could not be measured) are filled by
    the ``detectors`` iterator as it runs: they are read after. ``tables``: the
    product's binary tables, asked for once the detectors are written (a whole
    product only: a task's share has none). ``primary_cards``: standard cards of the
    primary header (``products.ProductSpec.primary_cards``).

    Raises
    ------
    UnprocessableDataError
        No detector could be measured (``problems`` for all of them).
    """
    first = raws[0]
    spec = ProductSpec(
        pro_catg=pro_catg,
        recipe=ctx.spec.name,
        instrument=ctx.instrument.name,
        raw_header=first.scan.primary,
        inputs=(
            *(Input(r.arcfile, r.category, r.sha256, "raw") for r in raws),
            *(Input(c.path.name, c.category, c.sha256, "calib") for c in calibs),
        ),
        parameters=dict(parameters or {}),
        config_hash=ctx.config_hash,
        pro_type=pro_type,
        primary_cards=dict(primary_cards or {}),
    )
    path = ctx.output_path(pro_catg)
    if qc is not None:
        detectors = _measured(ctx, pro_catg, detectors, qc)
    previews: list[DetectorPreview] = []
    detectors = _previewed(detectors, previews)
    extent = None
    if ctx.part is None:
        sha = write_product(path, spec, detectors, tables)
        write_previews(path, sha, previews)
    else:
        share = ctx.part
        sha = ""
        extent = write_product_part(
            ProductPart(
                ctx.product_path(pro_catg),
                share.index,
                share.tasks,
                share.first,
                len(share.detectors),
            ),
            spec,
            detectors,
        )
    result = ProductResult(
        pro_catg,
        path,
        sha,
        {k: dict(v) for k, v in (qc or {}).items()},
        setup_header(first.scan.primary),
        dict(parameters or {}),
        dict(problems or {}),
        extent,
        () if ctx.part is None else tuple(previews),
    )
    if ctx.part is None:  # a part's fellow parts may have measured other detectors
        _refuse_unmeasured(result)
    return result


def config_hash(instrument: InstrumentConfig) -> str:
    """A digest of the instrument configuration a product was made with."""
    return hashlib.sha256(instrument.model_dump_json().encode()).hexdigest()


def finish_parts(
    ctx: RecipeContext, parts: Sequence[Sequence[ProductResult]]
) -> list[ProductResult]:
    """The block's products from its tasks' shares (``split_detectors``), each written
    in place into one file: hashed and renamed (``products.finish_product``), QC
    values merged. A task for any executor."""
    finished = []
    for made in zip(*parts, strict=True):
        first = made[0]
        qc = {det: values for m in made for det, values in m.qc.items()}
        problems = {det: why for m in made for det, why in m.problems.items()}
        _refuse_unmeasured(dataclasses.replace(first, qc=qc, problems=problems))
        path = ctx.product_path(first.pro_catg)
        sha = finish_product(path, [m.extent for m in made if m.extent is not None])
        write_previews(path, sha, [p for m in made for p in m.previews])
        finished.append(
            dataclasses.replace(
                first, path=path, sha256=sha, qc=qc, problems=problems, extent=None, previews=()
            )
        )
    return finished
