"""Classify the indexed frames and (re)build the association blocks, in the database.

Idempotent: classifications and ABs that did not change are left untouched.

Incremental: each instrument's association state (the rules digest, the newest frame
associated) and the queue of QC decision changes not yet taken
(``qclib.db.products.decision_changes``) say what the stored blocks reflect. When
only new frames or new decisions came since, only the blocks they can change are
associated again: each stored block has a horizon (``AssociationBlock.horizon_days``:
the night distance of the last runner-up its logs show, or a tag's whole validity
window while it has room for more), and only a candidate appearing, going or
changing status within it can change its log. So the blocks redone are those with a
new frame or a changed decision within their horizon, the groups new frames join,
and, for as long as a redone block's products change (appear, go, become complete
or not), the blocks with that change within their horizon. The other blocks within
the reach (the widest validity window) of those redone stay as stored and offer
their products as a whole association would, so the result is the same
(tests/workflow/test_bookkeeping_scale.py compares them). New rules, the first
association, or an organisation group spanning more than the reach (which the
frames read could cut) associate every frame again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from qclib.associate import (
    AssociationBlock,
    KnownBlock,
    RawFrame,
    ab_id,
    association_reach,
    build_association_blocks,
    organise,
)
from qclib.classify import UNCLASSIFIED, ClassifiedFrame, classify_header
from qclib.config.instrument import InstrumentConfig
from qclib.db import Database, Session, ingest_log
from qclib.db import blocks as block_store
from qclib.db import products as product_store
from qclib.db.ingest_log import StoredFrame
from qclib.instruments import config_path, load_instrument, load_rules, rules_path
from qclib.oca.rules import RuleSet
from qclib.workspace import Workspace


@dataclass
class AssociationSummary:
    """What one classification + association pass did, per instrument."""

    frames: dict[str, int] = field(default_factory=dict)
    reclassified: dict[str, int] = field(default_factory=dict)
    unclassified: list[tuple[str, list[str]]] = field(default_factory=list)
    blocks: dict[str, int] = field(default_factory=dict)
    incomplete: dict[str, int] = field(default_factory=dict)
    changes: dict[str, tuple[int, int, int]] = field(default_factory=dict)


def _digest(instrument: str) -> str:
    """What association depends on: the instrument's rule file and its TOML."""
    text = rules_path(instrument).read_bytes() + config_path(instrument).read_bytes()
    return hashlib.sha256(text).hexdigest()


def as_raw_frame(frame: StoredFrame, result: ClassifiedFrame) -> RawFrame:
    """An indexed frame as association sees it: its header with what classification
    assigned (DO.CATG among it), at the middle of its exposure."""
    return _raw(frame, result.assigned)


def _raw(frame: StoredFrame, assigned: dict[str, Any]) -> RawFrame:
    mid_mjd = frame.mjd_obs + frame.exptime_s / 2 / 86400
    header = {**frame.keywords, **assigned}
    return RawFrame(frame.arcfile, frame.instrument, frame.night.isoformat(), mid_mjd, header)


def _stored_raw(frame: StoredFrame) -> RawFrame | None:
    """A frame as association sees it, from the classification stored with it."""
    if frame.do_catg in (None, UNCLASSIFIED) or frame.classification is None:
        return None
    return _raw(frame, frame.classification.get("assigned", {}))


def _classify(
    rules: RuleSet, frames: Iterable[StoredFrame]
) -> tuple[dict[str, tuple[str, dict[str, Any]]], list[RawFrame]]:
    """Classify frames: what to store per arcfile, and the classified ones as raw frames."""
    stored: dict[str, tuple[str, dict[str, Any]]] = {}
    raw: list[RawFrame] = []
    for frame in frames:
        result = classify_header(rules, frame.keywords)
        stored[frame.arcfile] = (result.do_catg, result.as_dict())
        if result.do_catg != UNCLASSIFIED:
            raw.append(as_raw_frame(frame, result))
    return stored, raw


def _signature(block: AssociationBlock | None) -> tuple[Any, ...] | None:
    """What a block offers later blocks: its products, where and from which frames;
    None when it offers nothing (incomplete or gone)."""
    if block is None or block.completeness != "complete":
        return None
    return (block.mid_mjd, block.inputs, block.products)


def _regrouped_by_fresh_frames(
    old: dict[str, AssociationBlock], new: dict[str, AssociationBlock], fresh: set[str]
) -> bool:
    """Whether every group that differs from the stored one holds a new frame (only
    new frames regroup; any other difference means the window cut a group)."""
    for block_id, block in new.items():
        stored = old.get(block_id)
        if (stored is None or stored.inputs != block.inputs) and not fresh & set(block.inputs):
            return False
    regrouped = {a for b in new.values() if fresh & set(b.inputs) for a in b.inputs}
    return all(block_id in new or set(block.inputs) <= regrouped for block_id, block in old.items())


def _first_frames(
    session: Session, blocks: list[AssociationBlock], raw: dict[str, RawFrame | None],
    fresh: dict[str, RawFrame],
) -> list[KnownBlock] | None:  # fmt: skip
    """Stored blocks with their first frames, as offered to the blocks planned again;
    None when a first frame is gone or unclassified (the blocks cannot be trusted)."""
    missing = [b.inputs[0] for b in blocks if raw.get(b.inputs[0]) is None]
    for frame in ingest_log.frames_by_arcfile(session, missing):
        raw[frame.arcfile] = fresh.get(frame.arcfile) or _stored_raw(frame)
    known = []
    for block in blocks:
        first = raw.get(block.inputs[0])
        if first is None:
            return None
        known.append(KnownBlock(block, first))
    return known


def _associate_changed(
    session: Session,
    config: InstrumentConfig,
    rules: RuleSet,
    fresh: dict[str, RawFrame],
    times: list[float],
    reach: float,
) -> tuple[list[AssociationBlock], set[str]] | None:
    """The blocks new frames and the changes at ``times`` can change, associated
    again, and the ids of the stored blocks they replace (see the module docstring);
    None when the result cannot be trusted."""
    name = config.name
    redo = {b.id: b for b in block_store.blocks_within_horizon(session, name, times, reach)}
    spread = [r.mid_mjd for r in fresh.values()]
    while True:
        mids = spread + [b.mid_mjd for b in redo.values()]
        if not mids:
            return [], set()
        lo, hi = min(mids), max(mids)
        # Frames start up to a day before their mid-time (EXPTIME/2 < 1 d).
        frames = ingest_log.frames_between(session, name, lo - reach - 1, hi + reach)
        raw = {f.arcfile: fresh.get(f.arcfile) or _stored_raw(f) for f in frames}
        stored = {
            b.id: b for b in block_store.blocks_between(session, name, lo - reach, hi + reach)
        }
        frames_in = [r for r in raw.values() if r is not None]
        groups = [
            (action, members)
            for action, members in organise(rules, frames_in)
            if ab_id(members[0].arcfile, action.name) in redo
            or any(m.arcfile in fresh for m in members)
        ]
        group_mids = [sum(m.mid_mjd for m in ms) / len(ms) for _, ms in groups]
        if group_mids and (min(group_mids) < lo or max(group_mids) > hi):
            spread += group_mids  # a new frame joined a group reaching farther: read more
            continue
        # A frame is in one group per action: the stored blocks a planned group takes
        # frames from are replaced by it.
        owner = {(b.action, a): b.id for b in stored.values() for a in b.inputs}
        replaced = set(redo) | {ab_id(ms[0].arcfile, a.name) for a, ms in groups} & set(stored)
        replaced |= {
            owner[(a.name, m.arcfile)]
            for a, ms in groups
            for m in ms
            if (a.name, m.arcfile) in owner
        }
        known = _first_frames(
            session, [b for b in stored.values() if b.id not in replaced], raw, fresh
        )
        if known is None:
            return None
        planned = {ab_id(ms[0].arcfile, a.name) for a, ms in groups}
        decisions = product_store.qc_decisions(session, name, planned | set(stored))
        blocks = build_association_blocks(
            rules, config.association, frames_in, decisions=decisions, groups=groups, known=known
        )
        for block in blocks:
            spans = [raw[a].mid_mjd for a in block.inputs if raw.get(a) is not None]
            if len(spans) != len(block.inputs) or max(spans) - min(spans) > reach:
                return None  # a group this wide may reach beyond the frames read
        old = {i: stored[i] for i in replaced}
        new = {b.id: b for b in blocks}
        if not _regrouped_by_fresh_frames(old, new, set(fresh)):
            return None  # groups changed with no new frame in them
        changed = [
            b.mid_mjd
            for i in old.keys() | new.keys()
            if _signature(old.get(i)) != _signature(new.get(i))
            for b in (old.get(i), new.get(i))
            if b is not None
        ]
        more = [
            b
            for b in block_store.blocks_within_horizon(session, name, changed, reach)
            if b.id not in replaced and b.id not in new
        ]
        if not more:
            return blocks, replaced
        redo.update((b.id, b) for b in more)


def _associate_instrument(
    session: Session, name: str, summary: AssociationSummary, *, full: bool
) -> None:
    config = load_instrument(name)
    rules = load_rules(name)
    digest = _digest(name)
    state = block_store.association_state(session, config.name)
    queued = product_store.decision_changes(session, config.name)
    count, newest = ingest_log.frame_count(session, config.name)
    reach = association_reach(rules, config.association)
    result = None
    changed = 0
    if not full and state is not None and state.rules_digest == digest:
        new_frames = ingest_log.frames_after(session, config.name, state.last_frame_id)
        classified, raw = _classify(rules, new_frames)
        changed = block_store.set_classifications(session, classified)
        times = [r.mid_mjd for r in raw]
        times += block_store.block_times(session, set(queued.values())).values()
        if not times:
            result = (0, 0, 0)
        else:
            found = _associate_changed(
                session, config, rules, {r.arcfile: r for r in raw}, times, reach
            )
            if found is not None:
                blocks, replaced = found
                result = block_store.store_blocks(
                    session, config.name, blocks, digest, replace=replaced, reach=reach
                )
    if result is None:  # first association, new rules, or a window not to be trusted
        classified, raw = _classify(rules, ingest_log.list_frames(session, instrument=config.name))
        changed = block_store.set_classifications(session, classified)
        decisions = product_store.qc_decisions(session, config.name)
        blocks = build_association_blocks(rules, config.association, raw, decisions=decisions)
        result = block_store.store_blocks(session, config.name, blocks, digest, reach=reach)
    product_store.take_decision_changes(session, queued)
    block_store.save_association_state(
        session, config.name, rules_digest=digest, last_frame_id=newest
    )
    session.flush()
    for frame in ingest_log.frames_with_catg(session, config.name, UNCLASSIFIED):
        misses = (frame.classification or {}).get("near_misses", [])
        summary.unclassified.append((frame.arcfile, list(misses)))
    summary.changes[config.name] = result
    summary.frames[config.name] = count
    summary.reclassified[config.name] = changed
    summary.blocks[config.name], summary.incomplete[config.name] = block_store.count_blocks(
        session, config.name
    )


def associate_workspace(
    workspace: Workspace, database: Database, *, full: bool = False
) -> AssociationSummary:
    """Classify frames with the current rules and store the ABs they form.

    Only what new frames or QC decisions can change is redone (module docstring);
    ``full``: classify every frame and associate them all again.
    """
    summary = AssociationSummary()
    for name in workspace.config.workspace.instruments:
        with database.transaction() as session:
            _associate_instrument(session, name, summary, full=full)
    return summary
