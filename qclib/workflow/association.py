"""Classify every indexed frame and (re)build the association blocks, in the database.

Idempotent: classifications and ABs that did not change are left untouched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from qclib.associate import RawFrame, build_association_blocks
from qclib.classify import UNCLASSIFIED, ClassifiedFrame, classify_header
from qclib.db import Database, ingest_log
from qclib.db import blocks as block_store
from qclib.db import products as product_store
from qclib.db.ingest_log import StoredFrame
from qclib.instruments import load_instrument, load_rules, rules_path
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
    text = rules_path(instrument).read_bytes() + (
        rules_path(instrument).with_suffix(".toml").read_bytes()
    )
    return hashlib.sha256(text).hexdigest()


def as_raw_frame(frame: StoredFrame, result: ClassifiedFrame) -> RawFrame:
    """An indexed frame as association sees it: its header with what classification
    assigned (DO.CATG among it), at the middle of its exposure."""
    mid_mjd = frame.mjd_obs + frame.exptime_s / 2 / 86400
    header = {**frame.keywords, **result.assigned}
    return RawFrame(frame.arcfile, frame.instrument, frame.night.isoformat(), mid_mjd, header)


def associate_workspace(workspace: Workspace, database: Database) -> AssociationSummary:
    """Classify all frames with the current rules and store the ABs they form."""
    summary = AssociationSummary()
    for name in workspace.config.workspace.instruments:
        config = load_instrument(name)
        rules = load_rules(name)
        with database.transaction() as session:
            frames = ingest_log.list_frames(session, instrument=config.name)
        raw: list[RawFrame] = []
        changed = 0
        with database.transaction() as session:
            for frame in frames:
                result = classify_header(rules, frame.keywords)
                if block_store.set_classification(
                    session, frame.arcfile, result.do_catg, result.as_dict()
                ):
                    changed += 1
                if result.do_catg == UNCLASSIFIED:
                    summary.unclassified.append((frame.arcfile, list(result.near_misses)))
                    continue
                raw.append(as_raw_frame(frame, result))
        with database.transaction() as session:
            decisions = product_store.qc_decisions(session, config.name)
        blocks = build_association_blocks(rules, config.association, raw, decisions=decisions)
        with database.transaction() as session:
            summary.changes[config.name] = block_store.store_blocks(
                session, config.name, blocks, _digest(name)
            )
        summary.frames[config.name] = len(frames)
        summary.reclassified[config.name] = changed
        summary.blocks[config.name] = len(blocks)
        summary.incomplete[config.name] = sum(b.completeness != "complete" for b in blocks)
    return summary
