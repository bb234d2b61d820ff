"""Certify or reject products, by a reviewer or automatically, and what follows.

A decision is refused as a whole, before anything changes, when it lacks what it
needs: rejecting needs a comment; certifying a product with a NOK value (or one made
with a rejected calibration) overrides its score and needs a comment saying why.
Every decision is one row of the audit log, in the transaction that changes the
product. Certified products are then archived (``store``).

Rejecting a product taints every product made with it, directly or through other
products (reverse provenance): their blocks are set back to be processed again by
the next pass, whose association no longer offers the rejected product, so they are
remade with the next best calibration; a tainted product that had been certified goes
back to review with the reason, and its archived copy is marked withdrawn.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from qclib.archive.audit import record_head
from qclib.archive.review import report_path
from qclib.archive.store import ArchiveError, archive_product, recover_pending, withdraw
from qclib.db import Database, qc1
from qclib.db import audit as audit_store
from qclib.db import products as product_store
from qclib.db.products import CERTIFIED_STATES, StoredProduct, provenance_checksums
from qclib.db.reviewers import check_name
from qclib.errors import ConfigError
from qclib.qc.scoring import roll_up
from qclib.workspace import Workspace

DecisionKind = Literal["certify", "reject"]
AUTO = "auto"


class CertificationRefused(ConfigError):  # noqa: N818 (a refusal, not a fault)
    """A decision that lacks what it needs; nothing was changed."""


@dataclass(frozen=True)
class Decision:
    """What one decision did to one product."""

    product_id: int
    name: str
    action: str  # certify | certify-override | reject | auto-certify | none
    old_status: str
    new_status: str
    message: str
    tainted: tuple[str, ...] = ()
    archived: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["tainted"] = list(self.tainted)
        return out


@dataclass
class _Plan:
    product: StoredProduct
    action: str
    new_status: str
    message: str
    tainted: list[str] = field(default_factory=list)


def _nok_values(session: Any, product: StoredProduct) -> list[str]:
    return [
        f"{name} {det}"
        for name, det, grade, _ in qc1.product_scores(session, product.id)
        if grade == "NOK"
    ]


def _plan(
    session: Any, product: StoredProduct, decision: DecisionKind, comment: str | None
) -> _Plan:
    """What deciding on one product means, or CertificationRefused saying why not."""
    if product.status == "candidate":
        raise CertificationRefused(
            f"{product.name} (product {product.id}) is not graded yet: "
            "'qc score' or the next 'qc run' grades it first"
        )
    if decision == "reject":
        if not comment:
            raise CertificationRefused(
                f"rejecting {product.name} (product {product.id}) needs --comment saying why"
            )
        if product.status == "rejected":
            return _Plan(product, "none", "rejected", "already rejected; nothing changed")
        return _Plan(product, "reject", "rejected", "rejected")
    if product.status in CERTIFIED_STATES:
        return _Plan(product, "none", product.status, f"already {product.status}; nothing changed")
    nok = _nok_values(session, product)
    if (nok or product.taint_reason or product.status == "rejected") and not comment:
        why = (
            f"has NOK values ({', '.join(nok[:3])}{'…' if len(nok) > 3 else ''})"
            if nok
            else "is tainted"
            if product.taint_reason
            else "was rejected"
        )
        raise CertificationRefused(
            f"{product.name} (product {product.id}) {why}: certifying it overrides the "
            "score; give --comment saying why"
        )
    override = bool(nok or product.taint_reason or product.status == "rejected")
    return _Plan(
        product,
        "certify-override" if override else "certify",
        "certified",
        "certified (score overridden)" if override else "certified",
    )


def _taint(session: Any, rejected: StoredProduct, reviewer: str, comment: str) -> list[str]:
    """Mark everything made with ``rejected`` (transitively) tainted and due for
    reprocessing; returns the tainted products' names."""
    names: list[str] = []
    seen = {rejected.id}
    frontier = {rejected.sha256: rejected.name}
    while frontier:
        users = [
            p for p in product_store.products_made_with(session, set(frontier)) if p.id not in seen
        ]
        next_frontier: dict[str, str] = {}
        for product in users:
            seen.add(product.id)
            via = next(
                (frontier[s] for s in provenance_checksums(product.provenance) if s in frontier),
                rejected.name,
            )
            reason = (
                f"made with {rejected.name}, rejected by {reviewer}: {comment}"
                if via == rejected.name
                else f"made with {via}, itself made with {rejected.name} (rejected by {reviewer})"
            )
            if product.status == "rejected":
                continue
            new_status = "scored" if product.status in CERTIFIED_STATES else product.status
            review = "\n".join([f"tainted: {reason}", *(product.review_reason or "").splitlines()])
            product_store.set_review(session, product.id, review_reason=review, taint_reason=reason)
            if new_status != product.status:
                product_store.set_product_status(session, product.id, new_status)
                withdraw(session, product, f"tainted: {reason}")
            product_store.reopen_block(
                session, product.ab_id, f"processed again: {rejected.name} was rejected"
            )
            audit_store.append(
                session,
                actor=reviewer,
                action="taint",
                product=product.name,
                product_id=product.id,
                old_status=product.status,
                new_status=new_status,
                comment=reason,
            )
            names.append(product.name)
            next_frontier[product.sha256] = product.name
        frontier = next_frontier
    return names


def decide(
    workspace: Workspace,
    database: Database,
    product_ids: list[int],
    *,
    decision: DecisionKind,
    comment: str | None,
    reviewer: str,
) -> list[Decision]:
    """Certify or reject products, all or none; then archive what was certified.

    Raises
    ------
    CertificationRefused
        A product is unknown, not graded yet, or the decision lacks its comment.
    """
    if decision not in ("certify", "reject"):
        raise CertificationRefused(f"unknown decision {decision!r}: certify or reject")
    if reviewer != AUTO:
        check_name(reviewer)
    comment = (comment or "").strip() or None
    if not product_ids:
        raise CertificationRefused("no product given; 'qc review' lists the queue")
    decisions: list[Decision] = []
    with database.transaction() as session:
        try:
            products = product_store.get_products(session, list(dict.fromkeys(product_ids)))
        except KeyError as err:
            raise CertificationRefused(
                f"no product {err.args[0]}; 'qc review' lists them with their ids"
            ) from None
        plans = [_plan(session, p, decision, comment) for p in products]
        for plan in plans:
            product = plan.product
            if plan.action == "none":
                decisions.append(
                    Decision(
                        product.id,
                        product.name,
                        "none",
                        product.status,
                        product.status,
                        plan.message,
                    )
                )
                continue
            product_store.set_product_status(session, product.id, plan.new_status)
            if plan.action != "reject":
                product_store.set_review(session, product.id, review_reason=None)
            audit_store.append(
                session,
                actor=reviewer,
                action="auto-certify" if reviewer == AUTO else plan.action,
                product=product.name,
                product_id=product.id,
                old_status=product.status,
                new_status=plan.new_status,
                comment=comment,
            )
            tainted: list[str] = []
            if plan.action == "reject":
                withdraw(session, product, f"rejected by {reviewer}: {comment}")
                tainted = _taint(session, product, reviewer, comment or "")
            decisions.append(
                Decision(
                    product.id,
                    product.name,
                    plan.action,
                    product.status,
                    plan.new_status,
                    plan.message,
                    tuple(tainted),
                )
            )
    record_head(workspace, database)
    archived = archive_certified(workspace, database)
    return [
        Decision(**{**d.__dict__, "archived": archived.get(d.product_id, d.archived)})
        for d in decisions
    ]


def archive_certified(workspace: Workspace, database: Database) -> dict[int, str]:
    """Archive every certified product not archived yet (a kill or a damaged file may
    have left some): product id -> archive name, or the error for that product."""
    recover_pending(workspace, database)
    with database.transaction() as session:
        todo = product_store.products_in(session, ("certified",))
    out: dict[int, str] = {}
    for product in todo:
        try:
            item = archive_product(
                workspace,
                database,
                product,
                report=report_path(workspace, product.night, product.ab_id),
            )
            out[product.id] = item.name
        except ArchiveError as err:
            out[product.id] = f"not archived: {err}"
    record_head(workspace, database)
    return out


def auto_certify(
    workspace: Workspace, database: Database, *, now: dt.datetime | None = None
) -> list[Decision]:
    """Certify, as ``auto``, the all-OK products (or only monitored: no rule covers
    them) not drawn for review, once their grading is older than the workspace's
    ``auto_certify_after_hours`` (ESO's autoCertifier)."""
    now = now or dt.datetime.now(dt.UTC)
    delay = dt.timedelta(hours=workspace.config.certification.auto_certify_after_hours)
    with database.transaction() as session:
        due = [
            p.id
            for p in product_store.unreviewed_scored(session)
            if p.scored_at is not None
            and _aware(p.scored_at) <= now - delay
            and _all_ok(session, p)
        ]
    if not due:
        return []
    return decide(workspace, database, due, decision="certify", comment=None, reviewer=AUTO)


def _aware(when: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes for what was stored in UTC."""
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _all_ok(session: Any, product: StoredProduct) -> bool:
    """No NOK, and graded OK where a rule could grade (or only monitored values)."""
    grades = roll_up(g for _, _, g, _ in qc1.product_scores(session, product.id))
    return grades in ("OK", "MONITORED")
