"""CalSelector: the calibrations a raw science frame needs, as an association tree.

The tree follows ESO's CalSelector files (``association`` elements with ``category``,
``certified``, ``complete`` and ``match`` attributes; ``mainFiles`` and ``file``
elements with ``category`` and ``name``; ``messages``; nested ``associatedFiles``), so
tools that read ESO's trees read ours. Files are named as ESO names them: without
``.fits``; masters by their archive name once archived.

The root is the frame's association block; under it, one association per calibration
it uses: a master calibration (its product) with, nested, the association of the raw
frames it was made from and, under that, what those needed in turn; a raw calibration
directly with its frames. ``match`` is ``calib_plan`` when the calibration was within
the calibration plan's window (EDPS quality level 0), else ``N/A`` (the level is given
as ``level``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qclib.associate import AssociationBlock, Choice
from qclib.db import Database, ingest_log
from qclib.db import archive as archive_store
from qclib.db import blocks as block_store
from qclib.db import products as product_store
from qclib.errors import ConfigError
from qclib.fitsio import scan_fits
from qclib.workspace import Workspace


@dataclass(frozen=True)
class Association:
    """One node of the tree."""

    category: str
    certified: bool
    complete: bool
    match: str | None  # calib_plan | N/A; None at the root
    level: int | None
    files: tuple[tuple[str, str], ...]  # (category, name)
    messages: tuple[str, ...] = ()
    children: tuple[Association, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "certified": self.certified,
            "complete": self.complete,
            "match": self.match,
            "level": self.level,
            "mainFiles": [{"category": c, "name": n} for c, n in self.files],
            "messages": list(self.messages),
            "associatedFiles": [c.as_dict() for c in self.children],
        }

    def file_names(self) -> set[str]:
        """Every file named in the tree (what a download of the tree fetches)."""
        out = {n for _, n in self.files}
        for child in self.children:
            out |= child.file_names()
        return out


def _stem(name: str) -> str:
    return name[: -len(".fits")] if name.endswith(".fits") else name


def _arcfile_of(ref: str) -> str:
    """An ARCFILE from an ARCFILE (with or without .fits) or a FITS file's path."""
    path = Path(ref)
    if path.is_file():
        value = scan_fits(path).primary.get("ARCFILE")
        if not value:
            raise ConfigError(f"{path}: no ARCFILE keyword; give the frame's ARCFILE instead")
        return str(value)
    return ref if ref.endswith(".fits") else f"{ref}.fits"


class _Builder:
    def __init__(self, workspace: Workspace, session: Any) -> None:
        self.session = session
        self.blocks = {b.id: b for b in block_store.list_blocks(session)}
        self.archived = {
            f.sha256: f.name
            for f in archive_store.files(session)
            if f.kind == "product" and f.status != "withdrawn"
        }

    def raw_association(self, block: AssociationBlock, seen: frozenset[str]) -> Association:
        children, messages = self.calibrations(block, seen | {block.id})
        if block.completeness != "complete" and block.reason:
            messages = (*messages, block.reason)
        return Association(
            category=block.input_category or block.action,
            certified=all(c.certified for c in children),
            complete=block.completeness == "complete" and all(c.complete for c in children),
            match=None,
            level=None,
            files=tuple((block.input_category or "", _stem(a)) for a in block.inputs),
            messages=messages,
            children=children,
        )

    def calibrations(
        self, block: AssociationBlock, seen: frozenset[str]
    ) -> tuple[tuple[Association, ...], tuple[str, ...]]:
        children: list[Association] = []
        messages: list[str] = []
        for tag in block.tags:
            if not tag.chosen:
                if tag.missing_reason:
                    messages.append(tag.missing_reason)
                continue
            level = max(c.level for c in tag.chosen)
            match = "calib_plan" if level == 0 else "N/A"
            raws = [c for c in tag.chosen if c.status == "raw"]
            if raws:
                children.append(
                    Association(
                        tag.category or tag.tag,
                        certified=True,
                        complete=tag.satisfied,
                        match=match,
                        level=level,
                        files=tuple((tag.category or "", _stem(c.ref)) for c in raws),
                    )
                )
            for choice in (c for c in tag.chosen if c.status != "raw"):
                children.append(self.master(tag.category or tag.tag, choice, match, seen))
        return tuple(children), tuple(messages)

    def master(
        self, category: str, choice: Choice, match: str, seen: frozenset[str]
    ) -> Association:
        parent = self.blocks.get(choice.ab_id or "")
        made = [
            p
            for p in product_store.products_of_block(self.session, choice.ab_id or "")
            if p.pro_catg == category
        ]
        nested = (
            (self.raw_association(parent, seen),)
            if parent is not None and parent.id not in seen
            else ()
        )
        if not made:
            state = product_store.block_states(self.session).get(choice.ab_id or "")
            why = f" ({state[0]}: {state[1]})" if state and state[1] else ""
            return Association(
                category,
                False,
                False,
                match,
                choice.level,
                (),
                (f"{category} not made yet by {choice.ab_id}{why}",),
                nested,
            )
        product = made[0]
        name = self.archived.get(product.sha256, _stem(product.name))
        messages = (f"tainted: {product.taint_reason}",) if product.taint_reason else ()
        return Association(
            category,
            certified=product.certified,
            complete=all(n.complete for n in nested),
            match=match,
            level=choice.level,
            files=((category, _stem(name)),),
            messages=messages,
            children=nested,
        )


def calselector_tree(workspace: Workspace, database: Database, ref: str) -> Association:
    """The association tree of a raw frame (an ARCFILE, or a FITS file's path).

    Raises
    ------
    ConfigError
        The frame is not indexed, or in no association block (with what to do).
    """
    arcfile = _arcfile_of(ref)
    with database.transaction() as session:
        if ingest_log.frame_by_arcfile(session, arcfile) is None:
            raise ConfigError(
                f"{arcfile} is not in the frame index; 'qc ingest' it (and 'qc associate')"
            )
        builder = _Builder(workspace, session)
        blocks = [b for b in builder.blocks.values() if arcfile in b.inputs]
        if not blocks:
            raise ConfigError(
                f"{arcfile} is in no association block (unclassified?); 'qc classify' it to see why"
            )
        block = min(blocks, key=lambda b: (b.action != "SCIENCE_REDUCED", b.id))
        tree = builder.raw_association(block, frozenset())
        return Association(
            block.action,
            tree.certified,
            tree.complete,
            None,
            None,
            ((block.input_category or "", _stem(arcfile)),),
            tree.messages,
            tree.children,
        )


def _element(node: Association, *, root: bool) -> ET.Element:
    attrs = {
        "category": node.category,
        "certified": str(node.certified).lower(),
        "complete": str(node.complete).lower(),
    }
    if root:
        attrs["mode"] = "Raw2Raw"
    else:
        attrs["match"] = node.match or "N/A"
        if node.level is not None:
            attrs["level"] = str(node.level)
    attrs["type"] = "main"
    element = ET.Element("association", attrs)
    main = ET.SubElement(element, "mainFiles")
    for category, name in node.files:
        ET.SubElement(main, "file", {"category": category, "name": name})
    messages = ET.SubElement(element, "messages")
    for text in node.messages:
        ET.SubElement(messages, "message").text = text
    associated = ET.SubElement(element, "associatedFiles")
    for child in node.children:
        associated.append(_element(child, root=False))
    return element


def to_xml(tree: Association) -> str:
    """The tree as ESO's CalSelector XML."""
    element = _element(tree, root=True)
    ET.indent(element, space="    ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(element, "unicode") + "\n"
