"""Which science blocks a pass processes, and whether their masters are certified.

Science is processed with certified master calibrations only, and on request: ``qc
science`` (every science block, or a night's, a programme's or named blocks), ``qc
process ID``, and in ``qc run`` the blocks of the programmes that qc.toml's ``[science]
programmes`` names (ESO processes about a tenth of its surveys' science; ``"*"``: every
programme). A science block nobody asked for is recorded as ``on_request``, a state
passes do not read again (``qclib.db.products.unfinished_blocks``); a requested one
whose chosen masters are not all certified waits, naming each master and its state.
A science action is one the instrument's TOML lists in ``science_actions``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from qclib.associate import AssociationBlock
from qclib.db import Database, Session, ingest_log
from qclib.db import blocks as block_store
from qclib.db import products as product_store
from qclib.instruments import load_instrument

#: The state of a science block no request covers.
ON_REQUEST = "on_request"


@dataclass(frozen=True)
class ScienceRequest:
    """The science blocks a pass processes: those of ``programmes`` (None: every
    programme)."""

    programmes: frozenset[str] | None = None

    @classmethod
    def of_programmes(cls, programmes: list[str]) -> ScienceRequest | None:
        """The request qc.toml's ``[science] programmes`` makes (None: no programme)."""
        if "*" in programmes:
            return cls(None)
        return cls(frozenset(programmes)) if programmes else None

    def wants(self, prog_id: str | None) -> bool:
        return self.programmes is None or (prog_id is not None and prog_id in self.programmes)


def is_science(block: AssociationBlock) -> bool:
    """Whether the block is of one of its instrument's science actions."""
    return block.action in load_instrument(block.instrument).association.science_actions


def programme_of(session: Session, block: AssociationBlock) -> str | None:
    """The programme (OBS.PROG.ID) of the block's first raw frame."""
    frame = ingest_log.frame_by_arcfile(session, block.inputs[0]) if block.inputs else None
    value = None if frame is None else frame.keywords.get("OBS.PROG.ID")
    return None if value is None else str(value)


def hold(
    session: Session,
    block: AssociationBlock,
    request: ScienceRequest | None,
    *,
    asked_by_id: bool = False,
) -> tuple[str, str] | None:
    """Why a science block is not processed now, as (state, reason); None when it is.

    Not requested (``asked_by_id``: its id was named, which requests it): on request.
    A chosen master not made yet, not certified or rejected: waiting, naming each. An optional
    one (OCA ``minRet = 0``) whose block failed is done without, as
    ``resolve_inputs`` does.
    """
    prog_id = programme_of(session, block)
    if not asked_by_id and (request is None or not request.wants(prog_id)):
        return (
            ON_REQUEST,
            f"{block.id}: science is processed on request: 'qc science --ab {block.id}', "
            f"or add its programme {prog_id or '(none)'} to qc.toml [science] programmes",
        )
    pending = []
    for tag in block.tags:
        for choice in tag.chosen:
            if choice.status == "raw":
                continue
            made = [
                p
                for p in product_store.products_of_block(session, choice.ab_id or "")
                if p.pro_catg == tag.category
            ]
            if not made:
                state = product_store.block_state(session, choice.ab_id or "")
                failed = state is not None and state[0] == "failed"
                if failed and tag.min_ret == 0:
                    continue  # optional (a ZEROPOINT): processed without it
                why = (
                    f"its block failed: 'qc abs show {choice.ab_id}'" if failed else "not made yet"
                )
                pending.append(f"{tag.category} of {choice.ab_id} ({why})")
            elif made[0].status == "rejected":
                pending.append(
                    f"{made[0].name} (rejected: the next 'qc run' associates the block "
                    "with another master)"
                )
            elif not made[0].certified:
                pending.append(f"{made[0].name} ({made[0].status})")
    if pending:
        return (
            "waiting",
            f"{block.id}: science uses certified masters only; waits for the certification "
            f"of {', '.join(pending)} ('qc review' lists them)",
        )
    return None


@dataclass(frozen=True)
class ScienceBlock:
    """A stored science block: its id, programme and processing state."""

    ab_id: str
    prog_id: str | None
    state: str


def science_blocks(database: Database, *, night: dt.date | None = None) -> list[ScienceBlock]:
    """Every science block (of a night), in time order."""
    with database.transaction() as session:
        states = product_store.block_states(session)
        return [
            ScienceBlock(b.id, programme_of(session, b), states.get(b.id, ("created", None))[0])
            for b in block_store.list_blocks(session, night=night)
            if is_science(b)
        ]
