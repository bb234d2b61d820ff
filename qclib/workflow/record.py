"""The one place where products enter the database: files, QC values, provenance.

Every product, a block's recipe's or the night's extinction, is recorded here in one
transaction with its block's state, and with one provenance schema, which ``qc``
commands, the archive, calselector and the audit read:

``inputs``
    what it was made from: raw ARCFILEs, or the file names of the products used;
``input_sha256``
    their SHA-256, in the same order;
``calibrations``
    calibration tag -> the SHA-256 of each calibration chosen for it;
``recipe``, ``parameters``, ``config_hash``
    what made it, with which parameters, under which instrument configuration.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qclib.db import Database
from qclib.db import products as product_store
from qclib.recipes.base import ProductResult, RecipeContext
from qclib.workspace import Workspace


@dataclass(frozen=True)
class Provenance:
    """What a block's products were made from and by (see the module's schema)."""

    inputs: tuple[str, ...]
    input_sha256: tuple[str, ...]
    recipe: str
    config_hash: str
    calibrations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.input_sha256):
            raise ValueError(
                f"{len(self.inputs)} inputs and {len(self.input_sha256)} checksums for "
                f"{self.recipe}"
            )

    @classmethod
    def of_context(cls, ctx: RecipeContext) -> Provenance:
        """The provenance of what a recipe made from ``ctx``: its raws and calibrations."""
        return cls(
            inputs=tuple(r.arcfile for r in ctx.raws),
            input_sha256=tuple(r.sha256 for r in ctx.raws),
            recipe=ctx.spec.name,
            config_hash=ctx.config_hash,
            calibrations={t: tuple(c.sha256 for c in cs) for t, cs in ctx.calibrations.items()},
        )

    def as_dict(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """The stored form, for one product made with ``parameters``."""
        return {
            "inputs": list(self.inputs),
            "input_sha256": list(self.input_sha256),
            "calibrations": {t: list(shas) for t, shas in self.calibrations.items()},
            "recipe": self.recipe,
            "parameters": dict(parameters),
            "config_hash": self.config_hash,
        }


@dataclass(frozen=True)
class BlockProducts:
    """What one block (or night-level product group) made, ready to be recorded."""

    ab_id: str
    instrument: str
    night: dt.date
    mid_mjd: float
    results: Sequence[ProductResult]
    provenance: Provenance
    units: Mapping[str, str]
    """QC parameter name -> unit."""


def record_products(workspace: Workspace, database: Database, made: BlockProducts) -> list[str]:
    """Record a block's products, their QC values and provenance, and the block as done,
    in one transaction. A block recorded before has its old rows replaced (the files
    were rewritten in place). Returns the products' file names."""
    with database.transaction() as session:
        product_store.remove_products_of_block(session, made.ab_id)
        for result in made.results:
            product_store.add_product(
                session,
                ab_id=made.ab_id,
                instrument=made.instrument,
                pro_catg=result.pro_catg,
                night=made.night,
                mid_mjd=made.mid_mjd,
                path=workspace.relative(result.path),
                sha256=result.sha256,
                header=result.header,
                provenance=made.provenance.as_dict(result.parameters),
                qc=result.qc,
                units=dict(made.units),
            )
        product_store.set_block_state(session, made.ab_id, "done")
    return [Path(r.path).name for r in made.results]
