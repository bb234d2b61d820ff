"""Recipes: one module per recipe, a pure core in qclib.calib and a thin ``run(ctx)``.

The registry is explicit: recipe name (as in the OCA ``recipe`` statement) -> run.
A block whose recipe is not here is reported as waiting for its recipe, not faked.
"""

from __future__ import annotations

from qclib.recipes import master_bias
from qclib.recipes.base import Recipe

REGISTRY: dict[str, Recipe] = {
    master_bias.RECIPE: master_bias.run,
}
