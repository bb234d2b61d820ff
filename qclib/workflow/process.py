"""Process complete association blocks with their recipes, in dependency order.

One block at a time: its raw inputs and chosen calibrations are resolved (a virtual
calibration becomes the product its parent block made), the recipe runs, and its
products and QC values are recorded in one transaction. A block whose recipe does
not exist yet, or whose parents have not produced, waits (with the reason); one
whose data cannot give a product is marked failed with the reason; neither stops
the others. Processing again does nothing for blocks that are done. What a recipe
needs and makes is declared in ``qclib.recipes.registry``.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from qclib.associate import AssociationBlock
from qclib.db import Database, ingest_log
from qclib.db import blocks as block_store
from qclib.db import products as product_store
from qclib.errors import ConfigError, IncompleteBlockError, UnprocessableDataError
from qclib.fitsio import scan_fits
from qclib.instruments import load_instrument
from qclib.instruments.recipe_check import recipe_parameters
from qclib.recipes.base import (
    CalibInput,
    ProductResult,
    RawInput,
    RecipeContext,
    config_hash,
    join_parts,
)
from qclib.recipes.registry import find_recipe, missing_recipe_reason
from qclib.workspace import Workspace

Status = Literal["done", "failed", "waiting", "skipped"]


@dataclass(frozen=True)
class ProcessOutcome:
    ab_id: str
    status: Status
    reason: str | None = None
    products: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "ab_id": self.ab_id,
            "status": self.status,
            "reason": self.reason,
            "products": list(self.products),
        }


def _context(workspace: Workspace, database: Database, block: AssociationBlock) -> RecipeContext:
    instrument = load_instrument(block.instrument)
    spec = find_recipe(block.recipe)
    assert spec is not None  # blocks without a known recipe wait (process_blocks)
    raws = []
    with database.transaction() as session:
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
                    chosen.append(
                        CalibInput(
                            tag.tag,
                            tag.category or "",
                            workspace.confine(frame.path),
                            frame.sha256,
                        )
                    )
                    continue
                made = (
                    [
                        p
                        for p in product_store.products_of_block(session, choice.ab_id)
                        if p.pro_catg == tag.category
                    ]
                    if choice.ab_id
                    else []
                )
                if not made:
                    parent_state = product_store.block_states(session).get(
                        choice.ab_id or "", ("created", None)
                    )
                    why = (
                        f", which failed: {parent_state[1]}" if parent_state[0] == "failed" else ""
                    )
                    raise IncompleteBlockError(
                        f"{block.id}: waits for {tag.category} from {choice.ab_id}{why}"
                    )
                chosen.append(
                    CalibInput(
                        tag.tag,
                        made[0].pro_catg,
                        workspace.confine(made[0].path),
                        made[0].sha256,
                    )
                )
            calibrations[tag.tag] = tuple(chosen)
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
    night_dir = workspace.products_dir / block.night
    return RecipeContext(
        instrument,
        block,
        spec,
        recipe_parameters(instrument, spec),
        tuple(raws),
        calibrations,
        night_dir,
        config_hash(instrument),
        min_frames=max(spec.min_raws, instrument.association.min_frames.get(block.action, 1)),
        catalogues=workspace.catalogues_dir,
        references=references,
    )


def _ordered(blocks: list[AssociationBlock]) -> list[AssociationBlock]:
    """Parents before children, otherwise in time order."""
    by_id = {b.id: b for b in blocks}
    done: set[str] = set()
    out: list[AssociationBlock] = []

    def visit(block: AssociationBlock) -> None:
        if block.id in done:
            return
        done.add(block.id)
        for parent in block.parents:
            if parent in by_id:
                visit(by_id[parent])
        out.append(block)

    for block in sorted(blocks, key=lambda b: (b.mid_mjd, b.id)):
        visit(block)
    return out


def run_recipe(ctx: RecipeContext) -> list[ProductResult]:
    """Run one block's recipe (a task for any executor: picklable in, picklable out)."""
    return ctx.spec.load()(ctx)


def _record(
    workspace: Workspace,
    database: Database,
    block: AssociationBlock,
    ctx: RecipeContext,
    results: list[ProductResult],
) -> ProcessOutcome:
    units = {name: q.unit for cat in ctx.instrument.qc.values() for name, q in cat.items()}
    with database.transaction() as session:
        # A block processed again (its frames changed) replaces its products: same
        # files (rewritten in place), new rows, new QC values and grades.
        product_store.remove_products_of_block(session, block.id)
        for result in results:
            product_store.add_product(
                session,
                ab_id=block.id,
                instrument=block.instrument,
                pro_catg=result.pro_catg,
                night=dt.date.fromisoformat(block.night),
                mid_mjd=block.mid_mjd,
                path=workspace.relative(result.path),
                sha256=result.sha256,
                header=result.header,
                provenance={
                    "inputs": [r.arcfile for r in ctx.raws],
                    "input_sha256": [r.sha256 for r in ctx.raws],
                    "calibrations": {
                        t: [c.sha256 for c in cs] for t, cs in ctx.calibrations.items()
                    },
                    "recipe": ctx.spec.name,
                    "parameters": result.parameters,
                    "config_hash": ctx.config_hash,
                },
                qc=result.qc,
                units=units,
            )
        product_store.set_block_state(session, block.id, "done")
    return ProcessOutcome(block.id, "done", products=tuple(Path(r.path).name for r in results))


def _fail(
    database: Database, block: AssociationBlock, err: UnprocessableDataError
) -> ProcessOutcome:
    reason = f"{block.id}: {err}"
    with database.transaction() as session:
        product_store.set_block_state(session, block.id, "failed", reason)
    return ProcessOutcome(block.id, "failed", reason)


def _wait(database: Database, block_id: str, reason: str) -> ProcessOutcome:
    with database.transaction() as session:
        product_store.set_block_state(session, block_id, "waiting", reason)
    return ProcessOutcome(block_id, "waiting", reason)


@dataclass
class _Job:
    """A block being processed: its tasks (one per run of detectors) and their parts."""

    block: AssociationBlock
    ctx: RecipeContext
    tasks: int
    parts: dict[int, list[ProductResult] | BaseException] = field(default_factory=dict)


def _remove_parts(job: _Job) -> None:
    """The parts written by the tasks of a block that failed or must wait."""
    for made in job.parts.values():
        if not isinstance(made, BaseException):
            for result in made:
                result.path.unlink(missing_ok=True)


def process_blocks(
    workspace: Workspace,
    database: Database,
    *,
    night: dt.date | None = None,
    ids: list[str] | None = None,
    max_retries: int | None = None,
    executor: concurrent.futures.Executor | None = None,
    detector_tasks: int = 1,
    progress: bool = False,
) -> list[ProcessOutcome]:
    """Process the complete, not yet done blocks (of a night, or the given ids).

    A block that failed is tried again, up to ``max_retries`` more times (no limit when
    None); after that it stays failed, with its last reason, until asked for by id.

    ``executor``: where recipes run (a process pool, or a Dask client's
    ``get_executor()``); None runs them here, one after another. Either way a block is
    started once its parents in this pass have finished, and its products are
    recorded here, in one transaction, as it completes.

    ``detector_tasks``: on an executor, a block's detectors are shared among up to
    this many tasks (each writes its part of every product; a last task joins them,
    byte for byte what one task would write). ``progress``: a bar of blocks finished.
    """
    from tqdm import tqdm

    with database.transaction() as session:
        blocks = block_store.list_blocks(session, night=night)
        states = product_store.block_states(session)
        attempts = product_store.block_attempts(session)
    if ids:
        unknown = sorted(set(ids) - {b.id for b in blocks})
        if unknown:
            raise ConfigError(
                f"no association block {', '.join(unknown)}"
                f"{' on night ' + night.isoformat() if night else ''}; 'qc abs' lists them"
            )
        blocks = [b for b in blocks if b.id in ids]
    outcomes: dict[str, ProcessOutcome] = {}
    todo: list[AssociationBlock] = []
    for block in _ordered(blocks):
        state, last_reason = states.get(block.id, ("created", None))
        if state == "done":
            continue
        tried = attempts.get(block.id, 0)
        if state == "failed" and max_retries is not None and tried > max_retries and not ids:
            outcomes[block.id] = ProcessOutcome(
                block.id,
                "failed",
                f"not retried after {tried} failed attempts ({last_reason}); "
                f"'qc process {block.id}' tries again",
            )
        elif block.completeness != "complete":
            outcomes[block.id] = ProcessOutcome(block.id, "skipped", block.reason)
        elif find_recipe(block.recipe) is None:
            outcomes[block.id] = ProcessOutcome(
                block.id, "waiting", missing_recipe_reason(block.action, block.recipe)
            )
        else:
            todo.append(block)

    pending = {b.id: b for b in todo}
    jobs: dict[str, _Job] = {}
    running: dict[concurrent.futures.Future[list[ProductResult]], tuple[_Job, int | None]] = {}

    bar = tqdm(total=len(todo), desc="blocks", unit="block", disable=not progress or not todo)

    def finish(job: _Job, results: list[ProductResult] | BaseException) -> None:
        block_id = job.block.id
        del jobs[block_id]
        bar.update()
        if isinstance(results, IncompleteBlockError):
            outcomes[block_id] = _wait(database, block_id, str(results))
        elif isinstance(results, UnprocessableDataError):
            outcomes[block_id] = _fail(database, job.block, results)
        elif isinstance(results, BaseException):
            raise results
        else:
            outcomes[block_id] = _record(workspace, database, job.block, job.ctx, results)

    def start_ready() -> None:
        for block_id, block in list(pending.items()):
            busy = set(pending) | set(jobs)
            if any(parent in busy for parent in block.parents):
                continue
            del pending[block_id]
            try:
                ctx = _context(workspace, database, block)
                tasks = ctx.split_detectors(detector_tasks if executor is not None else 1)
            except IncompleteBlockError as err:
                outcomes[block_id] = _wait(database, block_id, str(err))
                continue
            except UnprocessableDataError as err:
                outcomes[block_id] = _fail(database, block, err)
                continue
            job = jobs[block_id] = _Job(block, ctx, len(tasks))
            with database.transaction() as session:  # the monitor shows it running
                product_store.set_block_state(session, block_id, "running")
            if executor is None:
                try:
                    finish(job, run_recipe(ctx))
                except (IncompleteBlockError, UnprocessableDataError) as err:
                    finish(job, err)
                continue
            for i, task in enumerate(tasks):
                running[executor.submit(run_recipe, task)] = (job, i)

    start_ready()
    while running or pending:
        if not running:
            start_ready()
            if not running:
                break
        finished, _ = concurrent.futures.wait(
            running, return_when=concurrent.futures.FIRST_COMPLETED
        )
        for future in finished:
            job, part = running.pop(future)
            error = future.exception()
            if part is None:  # the parts joined
                finish(job, error if error is not None else future.result())
                continue
            job.parts[part] = error if error is not None else future.result()
            if len(job.parts) < job.tasks:
                continue
            made = [job.parts[i] for i in range(job.tasks)]
            errors = [p for p in made if isinstance(p, BaseException)]
            results = [p for p in made if not isinstance(p, BaseException)]
            if errors:
                _remove_parts(job)
                finish(job, errors[0])
            elif job.tasks == 1:
                finish(job, results[0])
            else:
                assert executor is not None  # parts are only made on an executor
                running[executor.submit(join_parts, job.ctx, results)] = (job, None)
        start_ready()
    bar.close()
    return [outcomes[b.id] for b in _ordered(blocks) if b.id in outcomes]
