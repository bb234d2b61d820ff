"""What a recipe gets (a RecipeContext) and gives back (ProductResults)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qclib.config.instrument import Geometry, InstrumentConfig
from qclib.errors import UnprocessableDataError
from qclib.fitsio import FitsScan


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
class RecipeContext:
    """Everything a recipe's ``run`` needs; built by the workflow."""

    instrument: InstrumentConfig
    block: Mapping[str, Any]
    raws: tuple[RawInput, ...]
    calibrations: Mapping[str, tuple[CalibInput, ...]]
    product_dir: Path
    config_hash: str

    def product_path(self, pro_catg: str) -> Path:
        return self.product_dir / f"{self.block['id']}_{pro_catg}.fits"

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
            f"{self.block['id']}: raw frames of mixed or unknown sizes {sorted(shapes, key=str)}"
        )

    def detectors(self) -> list[str]:
        """Detector EXTNAMEs present in every raw, in extension order of the first."""
        names = [[h.extname for h in r.scan.extensions if h.extname] for r in self.raws]
        common = [n for n in names[0] if all(n in other for other in names[1:])]
        if len(common) != len(names[0]) or any(len(n) != len(names[0]) for n in names):
            raise UnprocessableDataError(f"{self.block['id']}: raws hold different detectors")
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


Recipe = Callable[[RecipeContext], list[ProductResult]]


def config_hash(instrument: InstrumentConfig) -> str:
    """A digest of the instrument configuration a product was made with."""
    return hashlib.sha256(instrument.model_dump_json().encode()).hexdigest()
