"""The night's atmospheric extinction, from its standard-field visits.

Each ZEROPOINT block is one visit at one airmass; the extinction needs several. Once a
night holds at least two visits in a filter spanning 0.1 airmass or more, the
zeropoints of every detector seen in two or more visits are fitted together against
airmass, weighted by their errors: ZP(X) = ZP0(detector) - k X, one k for the night
(the atmosphere is the same over the field; a k per detector would only add noise),
``qclib.calib.photometry.fit_extinction``. The result is a night-level product
``<INSTRUMENT>.<night>.<filter>_EXTINCTION`` (QC only, per detector:
``QC.EXTINCTION`` and ``QC.EXTINCTION.ERR``, the night's, the same on every detector;
``QC.ZPOINT.X0.FIT``, the detector's; ``QC.NVISITS``). A later visit replaces it, and
so does a visit rejected by QC (it is left out of the fit); the same visits leave it
alone. Its product is recorded as every recipe's is (``qclib.workflow.record``): its
inputs are the zeropoint products it used, with their checksums.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection
from typing import Any

import numpy as np

from qclib.calib.photometry import fit_extinction
from qclib.db import Database
from qclib.db import products as product_store
from qclib.errors import UnprocessableDataError
from qclib.instruments import load_instrument
from qclib.products import DetectorProduct, Input, ProductSpec, write_product
from qclib.recipes.base import ProductResult, config_hash, qc_cards
from qclib.workflow import record
from qclib.workspace import Workspace

PRO_CATG = "EXTINCTION"
RECIPE = "qc_night_extinction"
MIN_AIRMASS_SPAN = 0.1


def measure_extinction(
    workspace: Workspace, database: Database, *, nights: Collection[dt.date] | None = None
) -> list[str]:
    """Write or refresh the extinction product of every night and filter that allows
    one (of ``nights`` only, when given); returns the block ids written."""
    with database.transaction() as session:
        made = product_store.list_products(
            session, pro_catgs=("ZEROPOINT", PRO_CATG), nights=nights
        )
    standards = [p for p in made if p.pro_catg == "ZEROPOINT" and p.status != "rejected"]
    existing = {p.ab_id: p for p in made if p.pro_catg == PRO_CATG}
    groups: dict[tuple[str, dt.date, str], list[product_store.StoredProduct]] = defaultdict(list)
    for product in standards:
        filt = load_instrument(product.instrument).filter_name(product.header)
        if filt is not None:
            groups[(product.instrument, product.night, filt)].append(product)
    written = []
    for (name, night, filt), visits in sorted(groups.items()):
        ab_id = f"{name}.{night.isoformat()}.{filt}_{PRO_CATG}"
        old = existing.get(ab_id)
        if old is not None and sorted(_input_checksums(old.provenance)) == sorted(
            p.sha256 for p in visits
        ):
            continue
        with database.transaction() as session:  # only the visits of a changed fit
            values = {p.id: product_store.qc_values(session, p.id) for p in visits}
        qc = _fit(visits, values)
        if not qc:
            continue
        _write(workspace, database, ab_id, name, night, visits, qc)
        written.append(ab_id)
    return written


def nights_to_refit(database: Database, done_blocks: Collection[str]) -> set[dt.date]:
    """The nights whose extinction may have changed in a pass: those of the blocks it
    processed (new zeropoints), and those whose extinction product is tainted (one of
    its zeropoints was rejected). Older nights are not read: a pass costs what it did,
    not the size of the history."""
    with database.transaction() as session:
        return product_store.block_nights(session, done_blocks) | product_store.tainted_nights(
            session, PRO_CATG
        )


def _input_checksums(provenance: dict[str, Any]) -> list[str]:
    """The zeropoints' SHA-256s an extinction product was fitted from (recorded before
    the common provenance schema, they were its ``inputs``)."""
    return list(provenance.get("input_sha256", provenance.get("inputs", [])))


def _fit(
    visits: list[product_store.StoredProduct], values: dict[int, dict[str, dict[str, Any]]]
) -> dict[str, dict[str, float]]:
    by_detector: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for product in visits:
        for detector, qc in values[product.id].items():
            airmass, zeropoint = qc.get("QC.AIRMASS"), qc.get("QC.ZPOINT")
            error = qc.get("QC.ZPOINT.ERR")
            if airmass is not None and zeropoint is not None:
                error = float(error) if error is not None and np.isfinite(error) else 0.03
                by_detector[detector].append((float(airmass), float(zeropoint), error))
    rows = [
        (detector, *row)
        for detector, seen in sorted(by_detector.items())
        if len(seen) >= 2 and np.ptp([x for x, _, _ in seen]) >= MIN_AIRMASS_SPAN
        for row in seen
    ]
    if not rows:
        return {}
    detectors = [r[0] for r in rows]
    airmasses, zeropoints, errors = (np.array([r[i] for r in rows]) for i in (1, 2, 3))
    try:
        fit = fit_extinction(detectors, airmasses, zeropoints, errors)
    except UnprocessableDataError:
        return {}
    return {
        detector: {
            "QC.EXTINCTION": round(fit.k, 12),
            "QC.EXTINCTION.ERR": round(fit.k_err, 12),
            "QC.ZPOINT.X0.FIT": round(zp0, 12),
            "QC.NVISITS": detectors.count(detector),
        }
        for detector, zp0 in fit.zeropoints_x0.items()
    }


def _write(
    workspace: Workspace,
    database: Database,
    ab_id: str,
    name: str,
    night: dt.date,
    visits: list[product_store.StoredProduct],
    qc: dict[str, dict[str, float]],
) -> None:
    instrument = load_instrument(name)
    parameters = {"min_airmass_span": MIN_AIRMASS_SPAN}
    spec = ProductSpec(
        pro_catg=PRO_CATG,
        recipe=RECIPE,
        instrument=name,
        raw_header=visits[0].header,
        inputs=tuple(
            Input(workspace.confine(p.path).name, p.pro_catg, p.sha256, "calib") for p in visits
        ),
        parameters=parameters,
        config_hash=config_hash(instrument),
        pro_type="QC",
    )
    path = workspace.products_dir / night.isoformat() / f"{ab_id}.fits"
    detectors = [
        DetectorProduct(d, None, None, None, qc_cards(instrument, PRO_CATG, v))
        for d, v in sorted(qc.items())
    ]
    sha = write_product(path, spec, detectors)
    record.record_products(
        workspace,
        database,
        record.BlockProducts(
            ab_id,
            name,
            night,
            max(p.mid_mjd for p in visits),
            [ProductResult(PRO_CATG, path, sha, qc, dict(visits[0].header), parameters)],
            record.Provenance(
                inputs=tuple(p.name for p in visits),
                input_sha256=tuple(p.sha256 for p in visits),
                recipe=RECIPE,
                config_hash=spec.config_hash,
            ),
            {n: q.unit for n, q in instrument.qc.get(PRO_CATG, {}).items()},
        ),
    )
