"""Recipes: one module per recipe, a pure core in qclib.calib and a thin ``run(ctx)``.

The registry is explicit: recipe name (as in the OCA ``recipe`` statement) -> run.
A block whose recipe is not here is reported as waiting for its recipe, not faked.
"""

from __future__ import annotations

from qclib.recipes import detector_noise, master_bias, master_dark, master_flat, zeropoint
from qclib.recipes.base import Recipe

REGISTRY: dict[str, Recipe] = {
    master_bias.RECIPE: master_bias.run,
    master_dark.RECIPE: master_dark.run,
    master_dark.RECIPE_IR: master_dark.run_ir,
    detector_noise.RECIPE: detector_noise.run,
    detector_noise.RECIPE_IR: detector_noise.run_ir,
    master_flat.RECIPE_DOME: master_flat.run_dome,
    master_flat.RECIPE_SKY: master_flat.run_sky,
    master_flat.RECIPE_IR: master_flat.run_ir,
    zeropoint.RECIPE: zeropoint.run,
    zeropoint.RECIPE_IR: zeropoint.run_ir,
}
