"""What a block's recipe runs on: its raws, chosen calibrations and reference masters.

A raw comes from the frame index; a calibration chosen as a raw frame too; a virtual
calibration (a master not made when the block was associated) becomes the product its
parent block made; a master the recipe makes is compared with the newest earlier one of
the same setup (``QC.REFDIFF.*``); a recipe declaring ``EXTINCTION`` gets the night's
certified extinction product of its filter, when there is one. What is missing makes the
block wait, saying which raw or which parent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from qclib.associate import AssociationBlock
from qclib.config.instrument import InstrumentConfig
from qclib.db import Database, Session, ingest_log
from qclib.db import products as product_store
from qclib.errors import IncompleteBlockError
from qclib.fitsio import scan_fits
from qclib.instruments import load_instrument
from qclib.instruments.recipe_check import recipe_parameters
from qclib.recipes.base import CalibInput, RawInput, RecipeContext, config_hash
from qclib.recipes.registry import find_recipe
from qclib.workspace import Workspace

#: The input a recipe declares to get its night's certified extinction product
#: (``qclib.workflow.extinction``), which no rule file selects: it is made after the
#: night's blocks, from all of its standard fields.
NIGHT_EXTINCTION = "EXTINCTION"


def _night_extinction(
    session: Session,
    instrument: InstrumentConfig,
    block: AssociationBlock,
    header: Mapping[str, Any],
) -> product_store.StoredProduct | None:
    """The block's night's certified extinction product of the raws' setup (filter)."""
    setup = instrument.setup_of(NIGHT_EXTINCTION, header)
    for product in product_store.list_products(
        session,
        instrument=block.instrument,
        pro_catgs=(NIGHT_EXTINCTION,),
        nights=[dt.date.fromisoformat(block.night)],
    ):
        if product.certified and product_store.same_setup(product.header, setup):
            return product
    return None


def resolve_inputs(
    workspace: Workspace, database: Database, block: AssociationBlock
) -> RecipeContext:
    """The context of ``block``'s recipe (its raws' headers scanned, no pixels read).
    An optional calibration (OCA ``minRet = 0``) whose parent block failed, or ended
    without making it, is left out.

    Raises
    ------
    IncompleteBlockError
        A raw or a raw calibration is not in the index, or a parent block has not made
        the calibration chosen from it (saying why, when that parent failed).
    """
    instrument = load_instrument(block.instrument)
    spec = find_recipe(block.recipe, block.instrument)
    if spec is None:
        raise IncompleteBlockError(f"{block.id}: no recipe {block.recipe!r}")
    with database.transaction() as session:
        raws = []
        for arcfile in block.inputs:
            frame = ingest_log.frame_by_arcfile(session, arcfile)
            if frame is None:
                raise IncompleteBlockError(f"{block.id}: raw {arcfile} is not in the index")
            path = workspace.confine(frame.path)
            raws.append(RawInput(arcfile, path, frame.do_catg or "", frame.sha256, scan_fits(path)))
        calibrations: dict[str, tuple[CalibInput, ...]] = {}
        for tag in block.tags:
            chosen = []
            for choice in tag.chosen:
                if choice.status == "raw":
                    frame = ingest_log.frame_by_arcfile(session, choice.ref)
                    if frame is None:
                        raise IncompleteBlockError(f"{block.id}: {choice.ref} not indexed")
                    path = workspace.confine(frame.path)
                    chosen.append(CalibInput(tag.tag, tag.category or "", path, frame.sha256))
                    continue
                made = [
                    p
                    for p in (
                        product_store.products_of_block(session, choice.ab_id)
                        if choice.ab_id
                        else []
                    )
                    if p.pro_catg == tag.category
                ]
                if not made:
                    state = product_store.block_state(session, choice.ab_id or "")
                    failed = state is not None and state[0] == "failed"
                    ended = state is not None and state[0] == "done"
                    if (failed or ended) and tag.min_ret == 0:
                        # Optional, and its block failed or is done without it (ESO's
                        # gimasterbias makes no bad-pixel map when given one): made
                        # without it.
                        continue
                    why = f", which failed: {state[1]}" if failed and state else ""
                    raise IncompleteBlockError(
                        f"{block.id}: waits for {tag.category} from {choice.ab_id}{why}"
                    )
                path = workspace.confine(made[0].path)
                chosen.append(CalibInput(tag.tag, made[0].pro_catg, path, made[0].sha256))
            calibrations[tag.tag] = tuple(chosen)
        if spec.takes(NIGHT_EXTINCTION) and raws:
            found = _night_extinction(session, instrument, block, raws[0].scan.primary)
            if found is not None:
                calibrations[NIGHT_EXTINCTION] = (
                    CalibInput(
                        NIGHT_EXTINCTION,
                        found.pro_catg,
                        workspace.confine(found.path),
                        found.sha256,
                    ),
                )
        references = {}
        # Master calibrations are compared with their predecessor (QC.REFDIFF.*).
        masters = [c for c in spec.products if c.startswith("MASTER_")]
        for category in masters if raws else ():
            found = product_store.reference_product(
                session,
                instrument=block.instrument,
                pro_catg=category,
                before_mjd=block.mid_mjd,
                setup=instrument.setup_of(category, raws[0].scan.primary),
            )
            if found is not None:
                references[category] = workspace.confine(found.path)
    return RecipeContext(
        instrument,
        block,
        spec,
        recipe_parameters(instrument, spec),
        tuple(raws),
        calibrations,
        workspace.products_dir / block.night,
        config_hash(instrument),
        min_frames=max(spec.min_raws, instrument.association.min_frames.get(block.action, 1)),
        catalogues=workspace.catalogues_dir,
        references=references,
    )
