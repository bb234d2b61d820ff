"""Recipes: one module per kind of product, a pure core in qclib.calib and a thin
``run(ctx)``. Which recipes exist, and what each needs and makes, is declared in
``qclib.recipes.registry``; a block whose recipe is not there waits, saying so."""
