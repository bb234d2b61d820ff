"""The recipes QC Workbench runs, each declared by what it needs and makes.

A recipe is named for what it does (a master dark, an infrared twilight flat...), not
for an instrument; an instrument's OCA rules name recipes in their ``recipe``
statement (old names stay as aliases so that existing workspaces and rule files still
load). Each entry declares

- its calibration inputs, by OCA tag (``select file as TAG``): required or optional,
  with the tags that may stand for the same input (a zeropoint's background is a
  MASTER_BIAS or a MASTER_DARK);
- the product categories (PRO.CATG) it writes;
- its parameters (a dataclass of ``qclib.calib.parameters``, filled from the
  instrument TOML's ``[recipes.<name>]``);
- the fewest raw frames its statistics work with;
- the report template (``notebooks/templates/<name>.ipynb``) of its blocks.

This module imports no numerical code: checking an instrument against it is cheap;
``RecipeSpec.load`` imports the recipe's code when it is to run.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qclib.calib.parameters import (
    BiasConfig,
    DarkConfig,
    FlatConfig,
    LinearityParameters,
    NoParameters,
    PhotometryConfig,
    ScienceConfig,
)
from qclib.errors import ConfigError

if TYPE_CHECKING:
    from qclib.recipes.base import ProductResult, RecipeContext

    Recipe = Callable[[RecipeContext], list[ProductResult]]


@dataclass(frozen=True)
class InputSpec:
    """One calibration input of a recipe: the OCA tags that provide it."""

    tags: tuple[str, ...]
    what: str
    required: bool = True

    @property
    def role(self) -> str:
        """The name the recipe asks for it by (its first tag)."""
        return self.tags[0]


@dataclass(frozen=True)
class RecipeSpec:
    """A recipe as the rest of the system sees it."""

    name: str
    does: str
    entry: str = dataclasses.field(repr=False)
    """``module:function`` of its ``run(ctx) -> list[ProductResult]``."""
    products: tuple[str, ...]
    inputs: tuple[InputSpec, ...] = ()
    parameters: type = NoParameters
    min_raws: int = 1
    template: str | None = None
    aliases: tuple[str, ...] = ()
    detector_parts: bool = True
    """Whether its products are made detector by detector, so that a block's detectors
    may be shared among tasks (a coadd needs every detector in one task)."""
    memory_mb: int = 0
    """Memory one of its tasks needs at most, which the scheduler keeps within the
    machine's (0: not counted; the native recipes hold a few detectors at a time)."""

    def load(self) -> Recipe:
        """The recipe's ``run`` function (imports its module)."""
        module, function = self.entry.split(":")
        return typing.cast("Recipe", getattr(importlib.import_module(module), function))

    def takes(self, role: str) -> bool:
        """Whether the recipe declares an input ``role``."""
        return any(spec.role == role for spec in self.inputs)

    def input(self, role: str) -> InputSpec:
        """The declared input a recipe asks for by ``role``.

        Raises
        ------
        KeyError
            The recipe does not declare it: its code reads an input its spec hides.
        """
        for spec in self.inputs:
            if spec.role == role:
                return spec
        raise KeyError(f"recipe {self.name} does not declare an input {role!r}")

    def parameters_from(self, table: Mapping[str, Any], where: str) -> Any:
        """Its parameters: the defaults, with the values of ``[recipes.<name>]``.

        Raises
        ------
        ConfigError
            An unknown parameter (with a suggestion) or a value of the wrong type,
            naming ``where`` (the file).
        """
        fields = {f.name: f for f in dataclasses.fields(self.parameters)}
        hints = typing.get_type_hints(self.parameters)
        values = {}
        for key, value in table.items():
            if key not in fields:
                raise ConfigError(
                    f"{where} [recipes.{self.name}]: unknown parameter {key!r}"
                    f"{did_you_mean(key, fields)}; it has "
                    f"{', '.join(fields) or 'none'}"
                )
            wanted = hints[key]
            if wanted is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if typing.get_origin(wanted) is tuple:  # tuple[str, ...]: a TOML list of str
                (item, _) = typing.get_args(wanted)
                if not isinstance(value, list) or not all(isinstance(v, item) for v in value):
                    raise ConfigError(
                        f"{where} [recipes.{self.name}] {key} = {value!r}: expected a list "
                        f"of {item.__name__}"
                    )
                values[key] = tuple(value)
                continue
            if not isinstance(value, wanted) or isinstance(value, bool) != (wanted is bool):
                raise ConfigError(
                    f"{where} [recipes.{self.name}] {key} = {value!r}: expected {wanted.__name__}"
                )
            values[key] = value
        return self.parameters(**values)


def did_you_mean(name: str, known: typing.Iterable[str]) -> str:
    """' (did you mean 'X'?)' for the closest of ``known`` to a mistyped name, else ''."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


_BIAS = InputSpec(("MASTER_BIAS",), "the master bias of the readout")
_LINEARITY = InputSpec(
    ("MASTER_LINEARITY",),
    "the detector's non-linearity (undone before anything is measured)",
    required=False,
)
#: Imaging of the sky (a CCD or an infrared array): the level under the light, the flat.
_LEVEL = InputSpec(
    ("MASTER_BIAS", "MASTER_DARK"),
    "the level to remove: master bias (CCD) or master dark of the DIT",
)
_IMAGING_FLAT = InputSpec(("MASTER_FLAT", "MASTER_TWILIGHT_FLAT"), "the master flat of the filter")

SPECS: tuple[RecipeSpec, ...] = (
    RecipeSpec(
        name="qc_master_bias",
        does="master bias, hot pixels and bias QC of CCD biases",
        entry="qclib.recipes.master_bias:run",
        products=("MASTER_BIAS",),
        parameters=BiasConfig,
        min_raws=3,
        template="master_bias",
    ),
    RecipeSpec(
        name="qc_master_dark",
        does="master dark of CCD darks, bias removed: dark current, hot pixels, particles",
        entry="qclib.recipes.master_dark:run",
        products=("MASTER_DARK",),
        inputs=(_BIAS,),
        parameters=DarkConfig,
        min_raws=2,
        template="master_dark",
    ),
    RecipeSpec(
        name="qc_ir_dark",
        does="master dark of one DIT of an infrared array (reference pixels removed); "
        "dark current from the slope over the night's DITs",
        entry="qclib.recipes.master_dark:run",
        products=("MASTER_DARK",),
        inputs=(
            InputSpec(
                ("DARK_OTHER_DIT",),
                "raw darks of the other DITs of the night (dark current slope)",
                required=False,
            ),
        ),
        parameters=DarkConfig,
        min_raws=2,
        template="master_dark",
        aliases=("qc_hawki_dark",),
    ),
    RecipeSpec(
        name="qc_master_reset",
        does="master reset of an infrared array's reset-read frames; QC from the catalogue",
        entry="qclib.recipes.master_reset:run",
        products=("MASTER_RESET",),
        min_raws=2,
        template="master_bias",
    ),
    RecipeSpec(
        name="qc_linearity",
        does="non-linearity per readout channel from dome flats at increasing DIT and "
        "darks of the same DITs",
        entry="qclib.recipes.linearity:run",
        products=("MASTER_LINEARITY",),
        inputs=(InputSpec(("DARK",), "raw darks of every DIT of the flats"),),
        parameters=LinearityParameters,
        min_raws=5,
        template="detector_noise",
    ),
    RecipeSpec(
        name="qc_read_gain",
        does="CCD gain and read noise by photon transfer: two flats (the block), two biases",
        entry="qclib.recipes.detector_noise:run_flat_pair",
        products=("READ_GAIN",),
        inputs=(InputSpec(("BIAS",), "two raw biases of the flats' readout"),),
        min_raws=2,
        template="detector_noise",
    ),
    RecipeSpec(
        name="qc_ir_detector_noise",
        does="infrared gain and read noise by photon transfer: two darks (the block), two flats",
        entry="qclib.recipes.detector_noise:run_dark_pair",
        products=("MASTER_READGAIN",),
        inputs=(
            InputSpec(("FLAT", "FLAT_TWILIGHT", "FLAT_DOME"), "two raw flats of equal level"),
            _LINEARITY,
        ),
        min_raws=2,
        template="detector_noise",
        aliases=("qc_hawki_detector_noise",),
    ),
    RecipeSpec(
        name="qc_master_dome_flat",
        does="master dome flat (bias removed) and cold pixels",
        entry="qclib.recipes.master_flat:run_dome",
        products=("MASTER_DOME_FLAT",),
        inputs=(_BIAS,),
        parameters=FlatConfig,
        min_raws=3,
        template="master_flat",
    ),
    RecipeSpec(
        name="qc_master_sky_flat",
        does="master twilight flat, and the master flat: the dome flat's pixel response "
        "under the twilight's illumination, with the bad-pixel map",
        entry="qclib.recipes.master_flat:run_sky",
        products=("MASTER_SKY_FLAT", "MASTER_FLAT"),
        inputs=(_BIAS, InputSpec(("MASTER_DOME_FLAT",), "the master dome flat of the filter")),
        parameters=FlatConfig,
        min_raws=3,
        template="master_flat",
    ),
    RecipeSpec(
        name="qc_ir_twilight_flat",
        does="infrared master twilight flat (dark of the DIT removed), bad pixels and "
        "confidence map",
        entry="qclib.recipes.master_flat:run_ir",
        products=("MASTER_TWILIGHT_FLAT", "MASTER_CONF"),
        inputs=(InputSpec(("MASTER_DARK",), "the master dark of the flats' DIT"), _LINEARITY),
        parameters=FlatConfig,
        min_raws=3,
        template="master_flat",
        aliases=("qc_hawki_twilight_flat",),
    ),
    RecipeSpec(
        name="qc_zeropoint",
        does="standard-field photometry per detector: zeropoint, image quality, WCS offset",
        entry="qclib.recipes.zeropoint:run",
        products=("ZEROPOINT",),
        inputs=(_LEVEL, _IMAGING_FLAT, _LINEARITY),
        parameters=PhotometryConfig,
        template="zeropoint",
        aliases=("qc_hawki_zeropoint",),
    ),
    RecipeSpec(
        name="qc_science_image",
        does="an imaging OB reduced with its masters (cosmic rays, sky, astrometric "
        "solution, photometric scale), coadded and measured: image quality and PSF maps, "
        "limiting magnitude, astrometric and photometric residuals",
        entry="qclib.recipes.science_image:run",
        products=("SCIENCE_COADD", "SCIENCE_COADD_WEIGHT"),
        inputs=(
            _LEVEL,
            _IMAGING_FLAT,
            _LINEARITY,
            InputSpec(
                ("ZEROPOINT",),
                "the night's zeropoint of the filter (each detector's, above the atmosphere)",
                required=False,
            ),
            InputSpec(
                ("EXTINCTION",),
                "the night's certified extinction and zeropoints above the atmosphere, "
                "fitted to all its standard fields (found by the workflow, not the rules)",
                required=False,
            ),
        ),
        parameters=ScienceConfig,
        template="science_coadd",
        detector_parts=False,
    ),
)

_BY_NAME: dict[str, RecipeSpec] = {
    name: spec for spec in SPECS for name in (spec.name, *spec.aliases)
}


def find_recipe(name: str | None, instrument: str | None = None) -> RecipeSpec | None:
    """The recipe a rule file names (by name or old alias), or for an instrument run
    by ESO's pipeline the ESO recipe its rules name; None if there is none."""
    if instrument is not None:
        from qclib.instruments import eso_recipes, is_eso

        if is_eso(instrument):
            return eso_recipes(instrument)[0].get(name or "")
    return _BY_NAME.get(name or "")


def recipe_names(instruments: typing.Iterable[str] = ()) -> list[str]:
    """Every recipe name and alias a rule file may use, and the ESO recipes that run
    for ``instruments``."""
    from qclib.instruments import eso_recipes

    eso = {n for i in instruments for n in eso_recipes(i)[0]}
    return sorted({*_BY_NAME, *eso})


def suggest_recipe(name: str) -> str:
    """' (did you mean 'X'?)' for a mistyped recipe name, else ''."""
    return did_you_mean(name, _BY_NAME)


def missing_recipe_reason(action: str, recipe: str | None, instrument: str | None = None) -> str:
    """Why a block of ``action`` is not processed when no recipe ``recipe`` exists."""
    if not recipe:
        return (
            f"action {action} names no recipe: QC Workbench does not process these "
            "blocks yet (they are associated so that the calibration checker watches "
            "the calibrations they need)"
        )
    if instrument is not None:
        from qclib.instruments import eso_recipes

        why = eso_recipes(instrument)[1].get(recipe)
        if why is not None:
            return (
                f"ESO recipe {recipe} cannot run here: {why}; the block waits until it "
                f"is installed or [eso.recipe_map] maps it to an installed recipe"
            )
    return (
        f"recipe {recipe} does not exist (the rules that made this block name it); "
        "the block waits until a recipe of that name does"
    )
