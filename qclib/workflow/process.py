"""Process complete association blocks with their recipes, in dependency order.

The wiring of three parts: ``qclib.workflow.inputs`` resolves a block's inputs (a
virtual calibration becomes the product its parent block made),
``qclib.workflow.scheduler`` runs the blocks' tasks in dependency order on the
executor, and ``qclib.workflow.record`` records each block's products and QC values in
one transaction as the block completes. A block whose recipe does not exist yet, or
whose parents have not produced, waits (with the reason); one whose data cannot give a
product is marked failed with the reason; neither stops the others. Processing again
does nothing for blocks that are done, and reads only the blocks not done; a block
recorded as waiting for a recipe that does not exist is reported once, and read again
when the recipe exists (or when asked for by id). What a recipe needs and makes is
declared in ``qclib.recipes.registry``.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import errno
import logging
import traceback
from dataclasses import dataclass
from typing import Any, Literal

from qclib.associate import AssociationBlock
from qclib.db import Database
from qclib.db import products as product_store
from qclib.errors import (
    ConfigError,
    IncompleteBlockError,
    QCError,
    RecipeBugError,
    UnprocessableDataError,
)
from qclib.memory import retained_memory
from qclib.recipes.base import ProductResult, RecipeContext, finish_parts
from qclib.recipes.registry import find_recipe, missing_recipe_reason, recipe_names
from qclib.workflow import record
from qclib.workflow.inputs import resolve_inputs
from qclib.workflow.scheduler import Plan, Report, RetryPolicy, Unit, run_units
from qclib.workflow.science import ScienceRequest, is_science
from qclib.workflow.science import hold as science_hold
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


#: Seconds a worker keeps the memory its last recipe freed, for its next task: touching
#: pages handed back costs this kind of VM about 1.2 s per GiB once a second has passed
#: (a 360 MB stack: 0.05 s at once, 0.39-0.47 s after 1-3 s), and a block shared among
#: four tasks needs its buffers four times.
RECIPE_MEMORY_LINGER_S = 10.0


def run_recipe(ctx: RecipeContext) -> list[ProductResult]:
    """Run one block's recipe (a task for any executor: picklable in, picklable out),
    the memory it frees kept for its own reuse and for the worker's next task within
    ``RECIPE_MEMORY_LINGER_S`` (``qclib.memory``).

    Raises
    ------
    RecipeBugError
        The recipe stopped on an error that is none of the workflow's: the block fails
        with it (and where it was raised) instead of the whole pass. What no block could
        do better with still stops the pass: a full, read-only or failing disk, a
        permission refused, a missing module.
    """
    with retained_memory(linger_s=RECIPE_MEMORY_LINGER_S):
        try:
            return ctx.spec.load()(ctx)
        except (QCError, ImportError):
            raise
        except OSError as err:
            if err.errno in _WORKSPACE_ERRNOS:
                raise
            raise RecipeBugError(_bug_report(ctx, err)) from err
        except Exception as err:
            raise RecipeBugError(_bug_report(ctx, err)) from err


#: OSErrors of the workspace's disk, not of one block's data: they stop the pass.
_WORKSPACE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM}
)


def _bug_report(ctx: RecipeContext, err: Exception) -> str:
    """One line: the recipe, the error, the innermost line of qclib that raised it."""
    frames = traceback.extract_tb(err.__traceback__)
    ours = [f for f in frames if "/qclib/" in f.filename] or frames
    where = ""
    if ours:
        last = ours[-1]
        where = f" at {last.filename.split('/qclib/')[-1]}:{last.lineno} ({last.name})"
    logging.getLogger(__name__).error(
        "recipe %s stopped on a bug", ctx.spec.name, exc_info=(type(err), err, err.__traceback__)
    )
    what = (
        "ran out of memory"
        if isinstance(err, MemoryError)
        else "stopped on an error of its own, a bug"
    )
    return (
        f"recipe {ctx.spec.name} {what}: {type(err).__name__}: {err}{where}; later passes "
        "retry the block (up to [workflow] max_retries), 'qc process ID' at once"
    )


def _ordered(blocks: list[AssociationBlock]) -> list[AssociationBlock]:
    """Parents before children, otherwise in time order."""
    by_id = {b.id: b for b in blocks}
    seen: set[str] = set()
    out: list[AssociationBlock] = []

    def visit(block: AssociationBlock) -> None:
        if block.id in seen:
            return
        seen.add(block.id)
        for parent in block.parents:
            if parent in by_id:
                visit(by_id[parent])
        out.append(block)

    for block in sorted(blocks, key=lambda b: (b.mid_mjd, b.id)):
        visit(block)
    return out


def _remove_parts(made: list[list[ProductResult]]) -> None:
    """The parts written by the tasks of a block that failed or must wait."""
    for results in made:
        for result in results:
            result.path.unlink(missing_ok=True)


def _finish(ctx: RecipeContext) -> Any:
    def finish(made: list[list[ProductResult]]) -> tuple[Any, tuple[Any, ...]]:
        return finish_parts, (ctx, made)

    return finish


class _BlockProcessing:
    """Plans each block (inputs resolved, state ``running``) and records how it ended."""

    def __init__(
        self,
        workspace: Workspace,
        database: Database,
        blocks: dict[str, AssociationBlock],
        detector_tasks: int,
        bar: Any,
    ) -> None:
        self.workspace = workspace
        self.database = database
        self.blocks = blocks
        self.detector_tasks = detector_tasks
        self.bar = bar
        self.contexts: dict[str, RecipeContext] = {}
        self.outcomes: dict[str, ProcessOutcome] = {}

    def plan(self, unit: Unit) -> Plan:
        ctx = resolve_inputs(self.workspace, self.database, self.blocks[unit.id])
        tasks = ctx.split_detectors(self.detector_tasks if ctx.spec.detector_parts else 1)
        with self.database.transaction() as session:  # the monitor shows it running
            product_store.set_block_state(session, unit.id, "running")
        self.contexts[unit.id] = ctx
        return Plan(
            [(run_recipe, (task,)) for task in tasks],
            join=_finish(ctx) if len(tasks) > 1 else None,
            discard=_remove_parts,
            memory_mb=ctx.spec.memory_mb,
        )

    def on_report(self, report: Report) -> None:
        block = self.blocks[report.unit.id]
        ctx = self.contexts.pop(block.id, None)
        self.bar.update()
        if report.status == "done":
            assert ctx is not None
            names = record.record_products(
                self.workspace,
                self.database,
                record.BlockProducts(
                    block.id,
                    block.instrument,
                    dt.date.fromisoformat(block.night),
                    block.mid_mjd,
                    report.result,
                    record.Provenance.of_context(ctx),
                    {
                        **{u: unit for r in report.result for u, unit in r.units.items()},
                        **{n: q.unit for cat in ctx.instrument.qc.values() for n, q in cat.items()},
                    },
                ),
            )
            self.outcomes[block.id] = ProcessOutcome(block.id, "done", products=tuple(names))
        elif isinstance(report.error, UnprocessableDataError):
            self._set(block.id, "failed", f"{block.id}: {report.error}")
            attempt = report.unit.attempts + 1
            self.outcomes[block.id] = ProcessOutcome(
                block.id,
                "failed",
                f"{block.id} (failed attempt {attempt}; later passes retry it up to "
                f"[workflow] max_retries times): {report.error}",
            )
        elif report.status == "error":
            self._set(block.id, "waiting", str(report.error))
        elif report.status == "blocked":
            cause = report.cause
            failed = cause is not None and isinstance(cause.error, UnprocessableDataError)
            which = "failed" if failed else "waits"
            why = self.outcomes[report.parent].reason if report.parent in self.outcomes else None
            self._set(
                block.id,
                "waiting",
                f"{block.id}: waits for {report.parent}, which {which}"
                + (f": {why}" if why else ""),
            )
        else:
            raise AssertionError(f"not admitted by the retry policy: {block.id}")

    def _set(self, ab_id: str, status: Status, reason: str) -> None:
        with self.database.transaction() as session:
            product_store.set_block_state(session, ab_id, status, reason)
        self.outcomes[ab_id] = ProcessOutcome(ab_id, status, reason)


def process_blocks(
    workspace: Workspace,
    database: Database,
    *,
    night: dt.date | None = None,
    ids: list[str] | None = None,
    max_retries: int | None = None,
    executor: concurrent.futures.Executor | None = None,
    detector_tasks: int = 1,
    slots: int | None = None,
    progress: bool = False,
    science: ScienceRequest | None = None,
    on_request: bool = False,
    memory_mb: int | None = None,
) -> list[ProcessOutcome]:
    """Process the complete, not yet done blocks (of a night, or the given ids).

    Science blocks (``qclib.workflow.science``) are processed when ``science`` requests
    their programme or ``ids`` name them, and only once their masters are certified;
    the others are recorded as on request. ``on_request``: also read the science
    blocks recorded so (``qc science``; a pass does not read them again).

    A block that failed is tried again, up to ``max_retries`` more times (no limit when
    None); after that it stays failed, with its last reason, until asked for by id.

    ``executor``: where recipes run (a process pool, or a Dask client's
    ``get_executor()``); None runs them here, one after another. Either way a block is
    started once its parents in this pass have finished, and its products are
    recorded here, in one transaction, as it completes.

    ``detector_tasks``: on an executor, a block's detectors are shared among up to
    this many tasks (each writes its detectors of every product in place; a last task
    hashes and renames them: byte for byte what one task writes). ``slots``: tasks
    handed to the executor at once (its workers; default ``detector_tasks``), the most
    urgent first.
    ``progress``: a bar of blocks finished. ``memory_mb``: the executor's memory,
    within which tasks that state their need (ESO's jobs) run together (None: not
    limited).

    Raises
    ------
    ConfigError
        An id that names no block (of the night).
    """
    from tqdm import tqdm

    with database.transaction() as session:
        if ids:
            unknown = sorted(set(ids) - product_store.existing_block_ids(session, ids, night=night))
            if unknown:
                raise ConfigError(
                    f"no association block {', '.join(unknown)}"
                    f"{' on night ' + night.isoformat() if night else ''}; 'qc abs' lists them"
                )
        unfinished = product_store.unfinished_blocks(
            session,
            night=night,
            ids=ids or None,
            recipes=None if ids else recipe_names(workspace.config.workspace.instruments),
            on_request=on_request,
        )
        held = {
            u.block.id: reason
            for u in unfinished
            if u.block.completeness == "complete"
            and find_recipe(u.block.recipe, u.block.instrument) is not None
            and is_science(u.block)
            and (reason := science_hold(session, u.block, science, asked_by_id=bool(ids)))
        }
    policy = RetryPolicy(None if ids else max_retries)
    by_id = {u.block.id: u for u in unfinished}
    order = _ordered([u.block for u in unfinished])
    outcomes: dict[str, ProcessOutcome] = {}
    units = []
    waits_for_recipe: list[tuple[str, str]] = []
    recorded: list[tuple[str, str, str]] = []
    for block in order:
        state = by_id[block.id]
        unit = Unit(
            block.id,
            tuple(block.parents),
            state.attempts if state.state == "failed" else 0,
        )
        if state.state == "failed" and not policy.admits(unit):
            outcomes[block.id] = ProcessOutcome(
                block.id,
                "failed",
                f"not retried after {unit.attempts} failed attempts ({state.reason}); "
                f"'qc process {block.id}' tries again",
            )
        elif block.completeness != "complete":
            outcomes[block.id] = ProcessOutcome(block.id, "skipped", block.reason)
        elif find_recipe(block.recipe, block.instrument) is None:
            reason = missing_recipe_reason(block.action, block.recipe, block.instrument)
            outcomes[block.id] = ProcessOutcome(block.id, "waiting", reason)
            if (state.state, state.reason) != ("waiting", reason):
                # Recorded: later passes do not read it again until its recipe exists.
                waits_for_recipe.append((block.id, reason))
        elif block.id in held:
            held_state, reason = held[block.id]
            outcomes[block.id] = ProcessOutcome(block.id, "waiting", reason)
            if (state.state, state.reason) != (held_state, reason):
                recorded.append((block.id, held_state, reason))
        else:
            units.append(unit)

    recorded += [(ab_id, "waiting", reason) for ab_id, reason in waits_for_recipe]
    if recorded:
        with database.transaction() as session:
            for ab_id, new_state, reason in recorded:
                product_store.set_block_state(session, ab_id, new_state, reason)

    tasks = detector_tasks if executor is not None else 1
    with tqdm(
        total=len(units), desc="blocks", unit="block", disable=not progress or not units
    ) as bar:
        processing = _BlockProcessing(workspace, database, {b.id: b for b in order}, tasks, bar)
        run_units(
            units,
            processing.plan,
            processing.on_report,
            executor=executor,
            slots=slots or tasks,
            policy=policy,
            expected=(IncompleteBlockError, UnprocessableDataError),
            memory_mb=memory_mb,
        )
    outcomes.update(processing.outcomes)
    return [outcomes[b.id] for b in order if b.id in outcomes]
