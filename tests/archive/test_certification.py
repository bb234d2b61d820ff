"""Certification and what follows from it, on SQLite and PostgreSQL: comments a decision
needs, the audit log, automatic certification, history rules coming alive, and a
rejected master tainting what was made with it until the next pass remakes that with
the next best master."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from qclib.archive.certification import CertificationRefused, auto_certify, decide
from qclib.archive.review import review_queue
from qclib.cli import main
from qclib.db import archive as archive_store
from qclib.db import audit as audit_store
from qclib.db import blocks as block_store
from qclib.db import products as product_store
from qclib.db import qc1
from qclib.workflow.run import run_pass
from tests.archive.conftest import fill_inbox


def _products(db) -> dict[str, product_store.StoredProduct]:
    """Products by '<night> <PRO.CATG>'."""
    with db.transaction() as session:
        return {
            f"{p.night.isoformat()} {p.pro_catg}": p for p in product_store.list_products(session)
        }


def _audit(db) -> list[audit_store.AuditEntry]:
    with db.transaction() as session:
        return audit_store.entries(session)


def test_a_decision_without_the_comment_it_needs_is_refused(workspace, degraded_night) -> None:
    fill_inbox(workspace, [degraded_night])
    db = workspace.open_database()
    run_pass(workspace, db, write_reports=False)
    (bias,) = _products(db).values()
    assert bias.status == "scored" and "NOK ESO_CCD_#66: QC.RON" in bias.review_reason
    (queued,) = review_queue(workspace, db)
    assert queued.product_id == bias.id and queued.grade == "NOK"

    with pytest.raises(CertificationRefused, match=r"has NOK values \(QC\.RON ESO_CCD_#66"):
        decide(workspace, db, [bias.id], decision="certify", comment=None, reviewer="anna")
    with pytest.raises(CertificationRefused, match=r"rejecting .* needs --comment saying why"):
        decide(workspace, db, [bias.id], decision="reject", comment="  ", reviewer="anna")
    runner = CliRunner()
    refused = runner.invoke(
        main, ["--workspace", str(workspace.root), "certify", str(bias.id), "--ok", "--as", "anna"]
    )
    assert refused.exit_code == 2
    (line,) = [x for x in refused.output.splitlines() if x.strip()]
    assert line.startswith("error:") and "give --comment saying why" in line
    assert _products(db)[f"{bias.night} MASTER_BIAS"].status == "scored"  # nothing changed
    assert _audit(db) == []

    done = runner.invoke(
        main,
        [
            "--workspace",
            str(workspace.root),
            "certify",
            str(bias.id),
            "--ok",
            "--as",
            "anna",
            "--comment",
            "CCD 66 noise known (ticket 4711); masters usable for the others",
        ],
    )
    assert done.exit_code == 0, done.output
    entries = _audit(db)
    assert [(e.actor, e.action, e.old_status, e.new_status) for e in entries] == [
        ("anna", "certify-override", "scored", "certified"),
        ("qc", "archive", "certified", "archived"),
    ]
    assert "ticket 4711" in entries[0].comment
    assert _products(db)[f"{bias.night} MASTER_BIAS"].status == "archived"
    db.close()


def test_undrawn_all_ok_products_are_certified_by_auto_after_the_delay(
    workspace, cascade_nights
) -> None:
    fill_inbox(workspace, cascade_nights[:1])
    db = workspace.open_database()
    run_pass(workspace, db, write_reports=False)  # the default delay is 24 h
    before = _products(db)
    assert {p.status for p in before.values()} == {"scored"}
    some = next(iter(before.values()))
    with pytest.raises(CertificationRefused, match="no product 999999; 'qc review' lists"):
        decide(workspace, db, [some.id, 999999], decision="certify", comment="x", reviewer="a")
    assert _products(db)[next(iter(before))].status == "scored" and _audit(db) == []  # none
    assert auto_certify(workspace, db, now=dt.datetime.now(dt.UTC)) == []  # too early
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=25)
    made = auto_certify(workspace, db, now=later)
    after = _products(db)
    for key, product in before.items():
        undrawn = product.review_reason is None
        assert (after[key].status == "archived") is undrawn, (key, product.review_reason)
    assert {d.action for d in made} == {"certify"} and made
    assert {e.actor for e in _audit(db)} == {"auto", "qc"}
    drawn = [p for p in before.values() if p.review_reason]
    assert all(p.id in {i.product_id for i in review_queue(workspace, db)} for p in drawn)
    db.close()


def test_history_rules_grade_once_enough_values_are_certified(workspace, bias_nights) -> None:
    fill_inbox(workspace, bias_nights)
    db = workspace.open_database()
    run_pass(workspace, db, write_reports=False)
    parameter = "QC.MASTER.BIAS.STDEV"  # a history rule: median ± 5 MAD of >= 3 values

    def grades(night_index: int) -> set[str]:
        night = (dt.date(2026, 11, 23) + dt.timedelta(days=night_index)).isoformat()
        with db.transaction() as session:
            rows = qc1.export_rows(session, parameter=parameter)
        return {r["grade"] for r in rows if r["night"] == night}

    assert all(grades(i) == {"UNSCORED"} for i in range(4))  # no certified history yet
    with db.transaction() as session:  # nothing certified: a pass regrades nothing
        assert qc1.values_to_score(session, lambda *_: {}) == []
    products = sorted(_products(db).values(), key=lambda p: p.night)
    decide(
        workspace,
        db,
        [p.id for p in products[:3]],
        decision="certify",
        comment="first nights of the history, checked by eye",
        reviewer="anna",
    )
    with db.transaction() as session:  # the later nights' values may now be graded
        nights = {v.night.isoformat() for v in qc1.values_to_score(session, lambda *_: {})}
    assert "2026-11-26" in nights and "2026-11-23" not in nights
    summary = run_pass(workspace, db, write_reports=False)
    assert summary.scored  # the last night's values were graded again
    assert grades(3) and "UNSCORED" not in grades(3) and grades(3) <= {"OK", "NOK"}
    with db.transaction() as session:
        rows = [
            r for r in qc1.export_rows(session, parameter=parameter) if r["night"] == "2026-11-26"
        ]
    assert all(r["rule"].endswith("history@2011-06-01") and r["low"] < r["high"] for r in rows)
    db.close()


def test_rejecting_a_master_taints_and_the_next_pass_remakes_with_the_next_best(
    workspace, cascade_nights
) -> None:
    fill_inbox(workspace, cascade_nights)
    db = workspace.open_database()
    run_pass(workspace, db, write_reports=False)
    made = _products(db)
    first_bias, bad_bias = made["2026-11-23 MASTER_BIAS"], made["2026-11-24 MASTER_BIAS"]
    flat = made["2026-11-24 MASTER_DOME_FLAT"]
    assert flat.provenance["calibrations"]["MASTER_BIAS"] == [bad_bias.sha256]
    # Night 1 certified; night 2's flat certified too, before its bias is found bad.
    night1 = [p.id for k, p in made.items() if k.startswith("2026-11-23")]
    decide(workspace, db, night1, decision="certify", comment="ok by eye", reviewer="anna")
    decide(workspace, db, [flat.id], decision="certify", comment="looks fine", reviewer="anna")
    with db.transaction() as session:
        (flat_archive,) = archive_store.of_product(session, flat.sha256)
    assert flat_archive.status == "archived"

    (rejection,) = decide(
        workspace,
        db,
        [bad_bias.id],
        decision="reject",
        comment="two-dimensional pick-up pattern",
        reviewer="bruno",
    )
    tainted = {k for k, p in made.items() if p.name in rejection.tainted}
    assert tainted == {"2026-11-24 MASTER_DOME_FLAT"}  # READ_GAIN takes raw biases
    now = _products(db)
    assert now["2026-11-24 MASTER_BIAS"].status == "rejected"
    back = now["2026-11-24 MASTER_DOME_FLAT"]
    assert back.status == "scored"  # certified, tainted: back to review with the reason
    assert back.taint_reason.startswith(f"made with {bad_bias.name}, rejected by bruno")
    queued = {i.product_id: i for i in review_queue(workspace, db)}
    assert queued[back.id].reasons[0].startswith("tainted: made with")
    with db.transaction() as session:
        assert archive_store.by_name(session, flat_archive.name).status == "withdrawn"
        states = product_store.block_states(session)
    assert states[flat.ab_id][0] == "created" and bad_bias.name in states[flat.ab_id][1]
    assert [e.action for e in _audit(db)][-2:] == ["reject", "taint"]

    summary = run_pass(workspace, db, write_reports=False)
    redone = {o.ab_id for o in summary.outcomes if o.status == "done"}
    assert redone == {flat.ab_id}
    remade = _products(db)
    new_flat = remade["2026-11-24 MASTER_DOME_FLAT"]
    assert new_flat.provenance["calibrations"]["MASTER_BIAS"] == [first_bias.sha256]
    assert new_flat.taint_reason is None and new_flat.status == "scored"
    assert remade["2026-11-24 MASTER_BIAS"].status == "rejected"  # never made again
    with db.transaction() as session:
        block = block_store.get_block(session, flat.ab_id)
    (bias_tag,) = [t for t in block.tags if t.category == "MASTER_BIAS"]
    assert bias_tag.chosen[0].ab_id == first_bias.ab_id
    assert any("rejected by QC: never used" in why for _, why in bias_tag.runners_up)
    assert not run_pass(workspace, db, write_reports=False).did_something  # settled
    db.close()
