"""An instrument whose recipes are ESO's own, run through esorex.

Its TOML (``qclib/instruments/<name>/<name>.toml``) names the installed ESO pipeline in
an ``[eso]`` table and holds only what ESO's files lack; the OCA rules (classification,
grouping, association, the recipe of each action) are read from the package, the QC1
keywords' types and units from the package's dictionary (``qclib.instruments.eso``
puts them together). ESO's rule files name no products, so ``[eso.products]`` says
which PRO.CATG each action's recipe makes (association plans the calibration cascade
from it); ``[recipes.<recipe>]`` holds esorex parameters that differ from ESO's
defaults and from the rule file's; ``[eso.recipe_map]`` names the installed recipe
that runs where the rule file names one the package lacks.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from qclib.config.instrument import InstrumentBase
from qclib.config.strict import Strict


class EsoJobLimits(Strict):
    """What one esorex job of a recipe may take."""

    timeout_s: float = Field(3600.0, gt=0, description="Wall time before it is stopped")
    threads: int = Field(1, ge=1, description="OpenMP threads (OMP_NUM_THREADS)")
    memory_mb: int = Field(
        2048,
        gt=0,
        description="Memory it needs at most (ESO's MUSE rule runs 24 detectors at once, "
        "about 21 GB): jobs run together only while their budgets fit the machine",
    )


class EsoSettings(Strict):
    """The ``[eso]`` table: which installed pipeline, and what its files lack."""

    pipeline: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$",
        description="The pipeline's name as installed: giraf, uves, muse, naco, visir, ...",
    )
    products: dict[str, list[str]] = Field(
        min_length=1,
        description="Per OCA action, the PRO.CATG of the products its recipe makes",
    )
    recipe_map: dict[str, str] = Field(
        default_factory=dict,
        description="Recipe the rule file names -> installed recipe that runs instead",
    )
    jobs: dict[str, EsoJobLimits] = Field(
        default_factory=dict, description="Per installed recipe: time, threads, memory"
    )
    default_job: EsoJobLimits = Field(default_factory=EsoJobLimits)
    report_template: str = Field(
        "eso_product", description="Report template of every block (notebooks/templates)"
    )

    @field_validator("products")
    @classmethod
    def _some_products(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for action, categories in value.items():
            if not categories:
                raise ValueError(f"action {action} makes no product: list its PRO.CATG")
        return value

    def limits(self, recipe: str) -> EsoJobLimits:
        """The job limits of an installed recipe (``jobs``, else ``default_job``)."""
        return self.jobs.get(recipe, self.default_job)


class EsoInstrumentConfig(InstrumentBase):
    """An instrument processed by its installed ESO pipeline. ``association``'s raw and
    product categories are those of the package's rule file (filled in when the
    instrument loads)."""

    eso: EsoSettings
